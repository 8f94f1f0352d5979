"""trajectories: agent runs in, trajectory pairs, step pairs, step labels and KTO rows out.

    frame, files = readers.read_trajectories(paths)        # ATIF .json, chat .jsonl, .parquet; validated
    result = derive.derive(frame, mode, rules, reviews)     # mode: trajectory | step | labels | kto
    result.rows, result.rejections, result.summary          # rows + counted rejections + DerivationSummary

Modules, one job each: atif / chat_jsonl (formats), readers (a delivery), validate (the rules a run
must keep), steps (long form + comparison keys), render (the one text rendering), pairing (who may
pair, who wins, the seeded cap), pairs (trajectory and step pairs), labels (PRM step labels from
reviews or Monte Carlo), reviews (the step-review vendor layout), kto, derive (accounting),
output (Parquet), commands (the CLI handler), config (the rules as typed config), checks (row checks
for the gate: tool results linked to earlier calls, no tool output in a step-pair completion).
The record schemas live in prefmix.records (TRAJECTORY_SCHEMA, STEP_LABEL_SCHEMA, KTO_SCHEMA).
"""
