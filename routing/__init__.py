"""routing: which synthetic pairs go to people, under a budget; queues out to a labeling tool and answers back."""
