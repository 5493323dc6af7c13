"""`python -m workflow`: see workflow/cli.py."""

from workflow.cli import main

if __name__ == "__main__":
    main()
