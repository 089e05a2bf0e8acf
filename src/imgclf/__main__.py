"""``python -m imgclf`` runs the command line."""

from imgclf.cli import main

if __name__ == "__main__":
    main()
