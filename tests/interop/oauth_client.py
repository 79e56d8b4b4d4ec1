"""A third-party OAuth client against gatehouse, unchanged from how a user
would write it: authlib fetches client_credentials tokens (Basic and body
authentication), PyJWT verifies them through the jwks_uri found in the
RFC 8414 discovery document.

Usage: oauth_client.py ISSUER CLIENT_ID CLIENT_SECRET
"""
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session

issuer, client_id, client_secret = sys.argv[1:4]

metadata = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=10).json()
assert metadata["issuer"] == issuer, metadata
jwks_client = jwt.PyJWKClient(metadata["jwks_uri"])

for method in ("client_secret_basic", "client_secret_post"):
    session = OAuth2Session(client_id, client_secret, token_endpoint_auth_method=method,
                            scope="webdav:read")
    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer", token
    access_token = token["access_token"]

    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt" and header["alg"] == "EdDSA", header
    signing_key = jwks_client.get_signing_key_from_jwt(access_token)
    claims = jwt.decode(access_token, signing_key.key, algorithms=["EdDSA"],
                        audience=issuer, issuer=issuer)
    assert claims["sub"] == client_id and claims["client_id"] == client_id, claims
    assert claims["scope"] == "webdav:read", claims
    assert claims["groups"] == ["media"], claims
    print(f"OK {method.split('_')[-1]} {claims['sub']}")

# A token with a flipped signature must not verify.
head, payload, signature = access_token.split(".")
flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
try:
    jwt.decode(f"{head}.{payload}.{flipped}", signing_key.key, algorithms=["EdDSA"],
               audience=issuer, issuer=issuer)
except jwt.InvalidSignatureError:
    print("OK rejected tampered token")
else:
    sys.exit("tampered token verified")
