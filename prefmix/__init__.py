"""prefmix: preference data for RLHF/DPO, generated, blended, gated and traced."""

__version__ = "0.1.0"
