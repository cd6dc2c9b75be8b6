"""Speed measured side by side against the reference libraries: python -m bench."""
