"""Foreign signers and verifiers of Agent Card signatures, run as scripts in
the a2a-sdk signing venv (:data:`e2e.venvs.SDK_SIGNING`): they import
nothing of the project."""
