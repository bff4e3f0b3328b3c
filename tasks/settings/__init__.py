"""Where the project lives and what ``params.yaml`` says (the typed settings schema)."""
