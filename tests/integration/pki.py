# SPDX-License-Identifier: Apache-2.0
"""Throwaway certificate authorities and certificates for the TLS tests,
made with the openssl CLI (P-256 keys)."""

import os
import subprocess

LOCAL_SAN = "DNS:localhost,IP:127.0.0.1"


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_ca(d, name, cn=None):
    """NAME.pem / NAME.key: a self-signed CA valid for two days."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
            "-subj", "/CN=" + (cn or name), cwd=d)


def make_cert(d, name, ca, cn=None, san=LOCAL_SAN, expired=False):
    """NAME.pem / NAME.key signed by the CA in CA.pem / CA.key, valid for a
    day from now, or (expired) for two days of 2020."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + (cn or name),
            cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
    if not expired:
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "1",
                "-extfile", name + ".ext", cwd=d)
        return
    # OpenSSL 3.0's x509 has no -not_after: openssl ca with explicit dates.
    os.makedirs(os.path.join(d, "ca-db"), exist_ok=True)
    open(os.path.join(d, "ca-db", "index.txt"), "w").close()
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca=c\n[c]\ndatabase=ca-db/index.txt\nnew_certs_dir=ca-db\n"
                "serial=ca-db/serial\ndefault_md=sha256\npolicy=p\ncopy_extensions=copy\n"
                "[p]\ncommonName=supplied\n")
    with open(os.path.join(d, "ca-db", "serial"), "w") as f:
        f.write("1000\n")
    openssl("ca", "-batch", "-config", "ca.cnf", "-cert", ca + ".pem", "-keyfile", ca + ".key",
            "-in", name + ".csr", "-out", name + ".pem", "-startdate", "20200101000000Z",
            "-enddate", "20200102000000Z", "-extfile", name + ".ext", "-notext", cwd=d)
