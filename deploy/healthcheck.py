"""Container health check: exit 0 when this container's web process answers /readyz with 200.

    python deploy/healthcheck.py [URL]     (default http://127.0.0.1:8000/readyz)

It asks as the proxy would: with the first of DJANGO_ALLOWED_HOSTS as the host and
``X-Forwarded-Proto: https``, so neither the allowed-hosts check nor the HTTPS redirect turns
a healthy process away. Standard library only: it runs before anything else is loaded.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/readyz"


def probe_host() -> str:
    hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")]
    host = next((h for h in hosts if h and h != "*"), "localhost")
    # ".example.com" allows every subdomain; the bare domain is one of them.
    return host.lstrip(".")


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        print(f"healthcheck: {url!r} is not an http(s) URL", file=sys.stderr)
        return 2
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, headers={"Host": probe_host(), "X-Forwarded-Proto": "https"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            body = response.read().decode(errors="replace")
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(errors="replace"), exc.code
    except OSError as exc:
        print(f"healthcheck: {url} unreachable: {exc}", file=sys.stderr)
        return 1
    print(f"healthcheck: {status} {body}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
