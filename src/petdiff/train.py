"""`python -m petdiff.train -cn=NAME ...` (what torchrun runs): the same as `petdiff train`."""

import sys

from petdiff.commands.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
