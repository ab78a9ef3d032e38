"""``python -m oauth_cc_auth``: the ``oauth-cc-auth`` command."""

import sys

from oauth_cc_auth.cli import main

sys.exit(main())
