"""Outside verifiers through a signing-key rotation: PyJWT's PyJWKClient
caches the JWKS for the max-age the server sends, and verifies every token
issued before, during and after `POST /admin/v1/keys/rotate`.

Two clients: PyJWKClient as shipped (it refetches once on an unknown kid),
and one that keeps to its cache strictly (as verifiers that never refetch
early do): only the server's publish-before-sign wait keeps it working.

Usage: jwks_rotation.py ISSUER ADMIN_TOKEN CLIENT_ID CLIENT_SECRET
Prints one JSON line: tokens, kids seen, failures.
"""
import json
import re
import sys
import time

import jwt
import requests

issuer, admin_token, client_id, client_secret = sys.argv[1:5]
metadata = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=10).json()
jwks_uri = metadata["jwks_uri"]
cache_control = requests.get(jwks_uri, timeout=10).headers["Cache-Control"]
max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))


class StrictCacheClient(jwt.PyJWKClient):
    """Never refetches before the cached set's max-age is over."""

    def get_signing_key(self, kid):
        key = self.match_kid(self.get_signing_keys(), kid)
        if key is None:
            raise jwt.PyJWKClientError(f"kid {kid} not in the cached JWKS")
        return key


clients = {
    "pyjwkclient": jwt.PyJWKClient(jwks_uri, cache_jwk_set=True, lifespan=max(max_age, 1)),
    "strict-cache": StrictCacheClient(jwks_uri, cache_jwk_set=True, lifespan=max(max_age, 1)),
}


def token():
    response = requests.post(metadata["token_endpoint"], auth=(client_id, client_secret),
                             data={"grant_type": "client_credentials"}, timeout=10)
    response.raise_for_status()
    return response.json()["access_token"]


def check(access_token, failures):
    for name, client in clients.items():
        try:
            key = client.get_signing_key_from_jwt(access_token)
            jwt.decode(access_token, key.key, algorithms=["EdDSA"], audience=issuer, issuer=issuer)
        except Exception as e:  # every failure counts, whatever its kind
            failures.append(f"{name}: {type(e).__name__}: {e}")


tokens, kids, failures = 0, [], []
# Fill both caches with the set from before the rotation.
check(token(), failures)
rotation = requests.post(f"{issuer}/admin/v1/keys/rotate",
                         headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)
assert rotation.status_code == 202, rotation.text
new_kid = rotation.json()["kid"]
deadline = time.monotonic() + 4 * max_age + 30
signed_since = None
# Until the new key has signed for longer than a cache lifetime.
while time.monotonic() < deadline:
    access_token = token()
    tokens += 1
    kid = jwt.get_unverified_header(access_token)["kid"]
    if kid not in kids:
        kids.append(kid)
    if kid == new_kid and signed_since is None:
        signed_since = time.monotonic()
    check(access_token, failures)
    if signed_since is not None and time.monotonic() - signed_since > max_age + 1:
        break
    time.sleep(0.1)

print(json.dumps({"max_age": max_age, "tokens": tokens, "kids": kids, "new_kid": new_kid,
                  "failure_count": len(failures), "failures": failures[:6]}))
