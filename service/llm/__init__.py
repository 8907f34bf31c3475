"""The model side of code generation: one client, prompts as data, generate / review / modify."""
