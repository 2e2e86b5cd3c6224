"""The member transformer: definition, data, training, evaluation and export."""
