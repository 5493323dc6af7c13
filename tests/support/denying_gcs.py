"""A Cloud Storage endpoint on localhost that refuses every request (403), for the real gs://
client stack: Beam's GcsIO, google-cloud-storage and google-auth, through HTTP.

No network here, so a real bucket cannot be reached; what a user meets on one they may not
read is a 403, and this server answers exactly that. The client is pointed at it the
documented ways: STORAGE_EMULATOR_HOST, and a service-account key (made up, generated here)
whose token_uri is this server, so credentials resolve at once and offline.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator

DENIED = "caller does not have storage.objects.list access to the Google Cloud Storage bucket"


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        if self.path.startswith("/token"):
            status, body = 200, {"access_token": "t", "expires_in": 3600, "token_type": "Bearer"}
        else:
            status, body = 403, {"error": {"code": 403, "message": DENIED, "errors": [{"reason": "forbidden"}]}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815 - http.server's names

    def log_message(self, *args) -> None:
        pass


def _service_account(token_uri: str) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "test", "private_key_id": "k", "private_key": pem,
            "client_email": "test@test.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri}


@contextlib.contextmanager
def denying_gcs(key_file: str) -> Iterator[dict[str, str]]:
    """Runs the server; yields the environment that points a process's gs:// client at it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with open(key_file, "w") as f:
        json.dump(_service_account(f"{url}/token"), f)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"STORAGE_EMULATOR_HOST": url, "GOOGLE_APPLICATION_CREDENTIALS": key_file}
    finally:
        server.shutdown()
        server.server_close()
