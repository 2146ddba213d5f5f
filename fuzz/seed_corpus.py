#!/usr/bin/env python3
"""Seed fuzz/corpus/<target>/ from the conformance vectors in tests/vectors/.

Run from anywhere: `python3 fuzz/seed_corpus.py`. Only the standard library is needed; if the
`cryptography` package is installed, the did_key corpus also gets valid low-S signatures made
with the fixed key the did_key target verifies against. Seeds are named by content hash, so
re-running is idempotent and never removes what libFuzzer added.
"""

import base64
import glob
import hashlib
import json
import os

FUZZ = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(FUZZ, "..", "tests", "vectors")
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def vec(*parts):
    return os.path.join(VECTORS, *parts)


def load_json(*parts):
    with open(vec(*parts), encoding="utf-8") as f:
        return json.load(f)


def b64(s):
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4))


def b58decode(s):
    n = 0
    for ch in s:
        n = n * 58 + B58.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(s) - len(s.lstrip("1"))) + raw


def varint(data, pos):
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def car_sections(data):
    """Yield (header, [(cid_bytes, block)]) of a CARv1; CIDv1 with sha2-256 only."""
    length, pos = varint(data, 0)
    header = data[pos : pos + length]
    pos += length
    blocks = []
    while pos < len(data):
        length, pos = varint(data, pos)
        section = data[pos : pos + length]
        pos += length
        # CIDv1: version, codec, multihash code, digest length (all single-byte varints here).
        cid_len = 4 + section[3]
        blocks.append((section[:cid_len], section[cid_len:]))
    return header, blocks


class Corpus:
    def __init__(self, target):
        self.dir = os.path.join(FUZZ, "corpus", target)
        os.makedirs(self.dir, exist_ok=True)
        self.count = 0

    def add(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        name = hashlib.sha1(data).hexdigest()
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
        self.count += 1


def car_files():
    found = [vec("extra", "indigo", "testing", "testdata", n) for n in ("greenground.repo.car", "divy.repo", "repo_slice.car")]
    for path in found:
        with open(path, "rb") as f:
            yield f.read()
    for path in sorted(glob.glob(vec("extra", "indigo", "atproto", "repo", "testdata", "firehose_commit_*.json"))):
        with open(path, encoding="utf-8") as f:
            yield b64(json.load(f)["blocks"]["$bytes"])
    for path in sorted(glob.glob(vec("extra", "indigo", "cmd", "relay", "testing", "testdata", "*.json"))):
        with open(path, encoding="utf-8") as f:
            for message in json.load(f)["messages"]:
                blocks = message["frame"]["body"].get("blocks")
                if isinstance(blocks, dict):
                    yield b64(blocks["$bytes"])


def seed_car_and_cbor():
    car, cbor = Corpus("car_read"), Corpus("cbor_decode")
    for data in car_files():
        car.add(data)
        header, blocks = car_sections(data)
        cbor.add(header)
        for _cid, block in blocks:
            if _cid[1] == 0x71:
                cbor.add(block)
    with open(vec("extra", "indigo", "testing", "testdata", "feedpost_record.cbor"), "rb") as f:
        cbor.add(f.read())
    for fixture in load_json("data-model", "data-model-fixtures.json"):
        cbor.add(b64(fixture["cbor_base64"]))
    return car, cbor


def seed_json():
    corpus = Corpus("json_data")
    for fixture in load_json("data-model", "data-model-fixtures.json"):
        corpus.add(json.dumps(fixture["json"]))
    for name in ("data-model-valid.json", "data-model-invalid.json"):
        for case in load_json("data-model", name):
            corpus.add(json.dumps(case["json"]))
    for case in load_json("lexicon", "record-data-valid.json"):
        corpus.add(json.dumps(case["data"]))
    with open(vec("extra", "indigo", "testing", "testdata", "repo_slice_record.json"), encoding="utf-8") as f:
        corpus.add(f.read())
    for path in sorted(glob.glob(vec("extra", "indigo", "atproto", "repo", "testdata", "firehose_commit_*.json"))):
        with open(path, encoding="utf-8") as f:
            corpus.add(f.read())
    return corpus


def seed_syntax():
    corpus = Corpus("syntax_parse")
    paths = glob.glob(vec("syntax", "*.txt")) + glob.glob(vec("extra", "bluesky-atproto", "**", "*.txt"), recursive=True)
    for path in sorted(paths):
        with open(path, encoding="utf-8") as f:
            for line in f.read().split("\n"):
                if line and not line.startswith("#"):
                    corpus.add(line)
    return corpus


def fixed_key_signatures():
    """(msg ‖ low-S r‖s) signed by the did_key target's fixed key (scalar 0x11 * 32)."""
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    except ImportError:
        return []
    orders = {
        "k256": (ec.SECP256K1(), 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141),
        "p256": (ec.SECP256R1(), 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551),
    }
    out = []
    for curve, order in orders.values():
        key = ec.derive_private_key(int("11" * 32, 16), curve)
        for msg in (b"", b"hello world", bytes(range(40))):
            r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
            low = min(s, order - s)
            out.append(msg + r.to_bytes(32, "big") + low.to_bytes(32, "big"))
            out.append(msg + r.to_bytes(32, "big") + (order - low).to_bytes(32, "big"))  # high-S
    return out


def seed_did_key():
    corpus = Corpus("did_key")
    dids = set()
    for case in load_json("crypto", "signature-fixtures.json"):
        dids.add(case["publicKeyDid"])
        corpus.add(case["publicKeyMultibase"])
        msg, sig = b64(case["messageBase64"]), b64(case["signatureBase64"])
        corpus.add(msg + sig)
    for case in load_json("crypto", "w3c_didkey_P256.json"):
        dids.add(case["publicDidKey"])
        private = b58decode(case["privateKeyBytesBase58"])
        corpus.add(private)
        corpus.add(private.hex())
    dids.add("did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF")
    dids.add("did:key:zQ3shazA2airLo8gNJvxGMFZWPJDRkLGNR6mn9Txsc8YYndwy")
    for did in sorted(dids):
        corpus.add(did)
        multikey = did[len("did:key:") :]
        corpus.add(multikey)
        point = b58decode(multikey[1:])[2:]
        corpus.add(point)
        corpus.add("z" + multikey[1:])
    for doc in ("did_plc_doc.json",):
        for method in load_json("extra", "indigo", "atproto", "identity", "testdata", doc).get("verificationMethod", []):
            if "publicKeyMultibase" in method:
                corpus.add(method["publicKeyMultibase"])
    for method in load_json("extra", "indigo", "testing", "testdata", "greenground.didDoc.json").get("verificationMethod", []):
        if "publicKeyMultibase" in method:
            corpus.add(method["publicKeyMultibase"])
            corpus.add(b58decode(method["publicKeyMultibase"][1:]))  # uncompressed point
    for name in ("k256", "p256", "secp256k1", "p-256", "K256"):
        corpus.add(name)
    for seed in fixed_key_signatures():
        corpus.add(seed)
    return corpus


def main():
    corpora = [*seed_car_and_cbor(), seed_json(), seed_syntax(), seed_did_key()]
    for corpus in corpora:
        files = len(os.listdir(corpus.dir))
        print(f"{os.path.relpath(corpus.dir, FUZZ)}: {corpus.count} seeds offered, {files} files")


if __name__ == "__main__":
    main()
