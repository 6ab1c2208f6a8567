"""The trust list of OPC UA server certificates: which servers the collector talks to.

``security.trust_dir`` in the plant file names a folder with two sub-folders:

* ``trusted/``: certificates (DER or PEM) of servers, or of the CAs that issued them, the
  collector accepts; an admin puts them there;
* ``pending/``: certificates a server presented that were not trusted. The collector
  stores each one there (named by its SHA-256 thumbprint), refuses the connection, and
  says so (log and ``/api/health``) with the thumbprint; an admin compares it with the
  server's own (on its screen or from its vendor) and accepts it with
  ``python app.py trust accept <thumbprint>`` (a move from ``pending/`` to ``trusted/``).
  This is trust on first use confirmed by a person: nothing is trusted by itself.

The checks are asyncua's (``asyncua.crypto.validator.CertificateValidator``: validity
period, application URI, server use; ``asyncua.crypto.truststore.TrustStore`` for
certificates issued by a trusted CA); a self-signed server certificate is trusted when
its own copy is in ``trusted/``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

log = logging.getLogger(__name__)

# Validity period, application URI and server role; trust is checked by ``TrustList``.
CHECKS = (CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.URI
          | CertificateValidatorOptions.PEER_SERVER)


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lower-case hex (what ``trust accept`` takes)."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)


@dataclass(frozen=True)
class CertificateEntry:
    state: str  # "trusted" or "pending"
    thumbprint: str
    subject: str
    not_after: str
    path: Path


class TrustList:
    """The two folders under ``trust_dir`` (created when missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.trusted_dir = self.directory / "trusted"
        self.pending_dir = self.directory / "pending"

    def ensure(self) -> None:
        self.trusted_dir.mkdir(parents=True, exist_ok=True)
        self.pending_dir.mkdir(parents=True, exist_ok=True)

    def entries(self) -> list[CertificateEntry]:
        out = []
        for state, folder in (("trusted", self.trusted_dir), ("pending", self.pending_dir)):
            for path in sorted(folder.glob("*")) if folder.is_dir() else ():
                try:
                    cert = load_certificate(path)
                except (OSError, ValueError):
                    continue
                out.append(CertificateEntry(state, thumbprint(cert), cert.subject.rfc4514_string(),
                                            cert.not_valid_after_utc.isoformat(), path))
        return out

    def trusted_thumbprints(self) -> set[str]:
        return {e.thumbprint for e in self.entries() if e.state == "trusted"}

    def store_pending(self, cert: x509.Certificate) -> Path:
        self.ensure()
        path = self.pending_dir / f"{thumbprint(cert)}.der"
        if not path.exists():
            path.write_bytes(cert.public_bytes(Encoding.DER))
        return path

    def accept(self, print_: str) -> Path:
        """Move the pending certificate with this thumbprint (or a unique prefix of it) to ``trusted/``."""
        wanted = print_.lower().replace(":", "")
        matches = [e for e in self.entries() if e.state == "pending" and e.thumbprint.startswith(wanted)]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} pending certificates match {print_!r} in {self.pending_dir}")
        self.ensure()
        target = self.trusted_dir / matches[0].path.name
        matches[0].path.replace(target)
        return target


class UntrustedCertificate(Exception):
    def __init__(self, cert: x509.Certificate, status: str) -> None:
        super().__init__(status)
        self.cert = cert
        self.status = status
        self.thumbprint = thumbprint(cert)


class ServerValidator:
    """``Client.certificate_validator`` for one endpoint: asyncua's checks, then the trust
    list. The last refusal stays in ``rejected`` (the collector reports it)."""

    def __init__(self, trust: TrustList) -> None:
        self.trust = trust
        self.rejected: UntrustedCertificate | None = None

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        self.rejected = None
        try:
            await CertificateValidator(CHECKS).validate(cert, app)
        except ServiceError as exc:
            self._refuse(cert, ua.StatusCode(ua.UInt32(exc.code)).name)
        trusted = self.trust.trusted_thumbprints()
        if thumbprint(cert) in trusted:
            return
        if trusted:  # a CA among them may have issued it (an empty store is an error in cryptography)
            store = TrustStore([self.trust.trusted_dir], [])
            await store.load_trust()
            if _issued_by_trusted_ca(store, cert):
                return
        self._refuse(cert, "BadCertificateUntrusted")

    def _refuse(self, cert: x509.Certificate, status: str) -> None:
        self.rejected = UntrustedCertificate(cert, status)
        if status == "BadCertificateUntrusted":
            try:
                self.trust.store_pending(cert)
            except OSError as exc:  # still refused; the log and health carry the thumbprint
                log.warning("cannot store the refused certificate under %s: %s", self.trust.pending_dir, exc)
        raise ServiceError(getattr(ua.StatusCodes, status, ua.StatusCodes.BadCertificateInvalid))


def _issued_by_trusted_ca(store: TrustStore, cert: x509.Certificate) -> bool:
    """asyncua's chain check, quietly (it logs a traceback for every certificate it does not trust)."""
    quiet = logging.getLogger("asyncuagds.validate")
    previous = quiet.disabled
    quiet.disabled = True
    try:
        return store.is_trusted(cert)
    finally:
        quiet.disabled = previous


# --- python app.py trust list|accept ----------------------------------------------------


def add_parsers(add: Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]) -> None:
    trust = add("trust", cmd_trust, "OPC UA server certificates: list the trust lists, accept a pending one")
    sub = trust.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="trusted and pending certificates of every endpoint with a trust_dir")
    sub.add_parser("accept", help="move a pending certificate to trusted/ (by its SHA-256 thumbprint or a "
                   "unique prefix)").add_argument("thumbprint")


def cmd_trust(args: argparse.Namespace) -> int:
    from config.settings import Settings

    plant = Settings.from_env(plant_path=args.plant).plant  # --plant, $PLANT_FILE or the demo
    lists = {name: TrustList(ep.security.trust_dir) for name, ep in plant.endpoints.items() if ep.security.trust_dir}
    if not lists:
        print("no endpoint of the plant file has security.trust_dir")
        return 1
    if args.action == "list":
        for name, trust in lists.items():
            print(f"endpoint {name}: {trust.directory}")
            for entry in trust.entries():
                print(f"  {entry.state:8} {entry.thumbprint}  {entry.subject}  valid until {entry.not_after}")
        return 0
    for name, trust in lists.items():
        try:
            target = trust.accept(args.thumbprint)
        except LookupError:
            continue
        print(f"endpoint {name}: trusted {target} (the collector uses it at its next connection attempt)")
        return 0
    print(f"no pending certificate matches {args.thumbprint!r} (python app.py trust list)")
    return 1
