# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)
"""A VM's Jupyter token from the site's secret and the VM's nonce: the one rule, shared by the
filter ``ssc.repo2docker.jupyter_token`` and the module ``ssc.repo2docker.cull_plan``."""

import hashlib
import hmac

TOKEN_LENGTH = 48  # hexadecimal characters
MIN_SECRET = 32


def derive(secret: str, nonce: str) -> str:
    """HMAC-SHA256(secret, nonce) as TOKEN_LENGTH hexadecimal characters. Raises ValueError
    for a secret shorter than MIN_SECRET characters or an empty nonce."""
    if not isinstance(secret, str) or len(secret) < MIN_SECRET:
        raise ValueError(f"the secret must be a string of at least {MIN_SECRET} characters")
    if not isinstance(nonce, str) or not nonce:
        raise ValueError("the nonce must be a non-empty string")
    return hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()[:TOKEN_LENGTH]
