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


# The jwt target's verifier expects this audience and method, at this time (see jwt.rs).
JWT_AUD = "did:web:fuzz.example"
JWT_LXM = "com.atproto.repo.createRecord"
JWT_NOW = 1_700_000_000


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(value):
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def seed_jwt():
    """Mode byte, then: 0 the token text; 1 header JSON ‖ 0x00 ‖ payload JSON (the target signs
    it; bit 7 of the mode byte picks p256 over k256); 2 bytes the target turns into claims."""
    corpus = Corpus("jwt")
    iss = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
    base = {"iat": JWT_NOW - 10, "iss": iss, "aud": JWT_AUD, "exp": JWT_NOW + 60, "lxm": JWT_LXM, "jti": "0123456789abcdef"}
    payloads = [
        base,
        {k: v for k, v in base.items() if k != "lxm"},
        {k: v for k, v in base.items() if k not in ("iat", "jti")},
        {**base, "iss": iss + "#atproto_labeler"},
        {**base, "iss": iss + "#"},
        {**base, "iss": "alice.example.com"},
        {**base, "aud": JWT_AUD + "#atproto_pds"},
        {**base, "aud": "did:web:other.example"},
        {**base, "exp": JWT_NOW},
        {**base, "exp": JWT_NOW - 1},
        {**base, "exp": JWT_NOW + 0.5},
        {**base, "exp": 1e300},
        {**base, "exp": str(JWT_NOW + 60)},
        {**base, "lxm": None},
        {**base, "lxm": 7},
        {**base, "lxm": "com.atproto.repo.deleteRecord"},
    ]
    headers = [
        {"typ": "JWT", "alg": "ES256K"},
        {"typ": "JWT", "alg": "ES256"},
        {"alg": "ES256K"},
        {"typ": "at+jwt", "alg": "ES256K"},
        {"typ": "refresh+jwt", "alg": "ES256K"},
        {"typ": "dpop+jwt", "alg": "ES256"},
        {"typ": "JWT", "alg": "HS256"},
        {"typ": "JWT", "alg": "none"},
        {"typ": "JWT"},
    ]
    for curve_bit, header in ((0x00, headers[0]), (0x80, headers[1])):
        for payload in payloads:
            corpus.add(bytes([1 | curve_bit]) + compact(header) + b"\0" + compact(payload))
            corpus.add(bytes([1 | curve_bit]) + compact(payload))
    for header in headers[2:]:
        corpus.add(b"\x01" + compact(header) + b"\0" + compact(base))
        corpus.add(b"\x81" + compact(header) + b"\0" + compact(base))
    for header in headers:
        for payload in payloads[:4]:
            token = f"{b64url(compact(header))}.{b64url(compact(payload))}.{b64url(bytes(range(64)))}"
            corpus.add(b"\x00" + token.encode("ascii"))
    for token in ("", ".", "..", "a.b.c", "a.b.c.d", "e30.e30.", "e30=.e30==.AA=="):
        corpus.add(b"\x00" + token.encode("ascii"))
    for mode in (b"\x02", b"\x82"):
        corpus.add(mode + bytes(range(64)))
        corpus.add(mode + b"\x01" * 32)
    return corpus


def seed_lexicon():
    """Mode byte, then: 0 a Lexicon document (optionally ‖ 0x00 ‖ a JSON value); 1 atproto JSON;
    2 DAG-CBOR; 3 a query string."""
    corpus = Corpus("lexicon")
    docs = sorted(glob.glob(os.path.join(FUZZ, "..", "lexicons", "**", "*.json"), recursive=True))
    docs += sorted(glob.glob(vec("lexicon", "catalog", "*.json")))
    for path in docs:
        with open(path, "rb") as f:
            corpus.add(b"\x00" + f.read())
    for name in ("lexicon-valid.json", "lexicon-invalid.json"):
        for case in load_json("lexicon", name):
            corpus.add(b"\x00" + compact(case["lexicon"]))
    records = [case["data"] for case in load_json("lexicon", "record-data-valid.json")]
    records += [
        {"$type": "app.bsky.feed.post", "text": "hello 👋 world", "createdAt": "2023-11-14T22:13:20.000Z", "langs": ["en"],
         "facets": [{"index": {"byteStart": 0, "byteEnd": 5}, "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com"}]}],
         "reply": {"root": {"uri": "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3jzfcijpj2z2a", "cid": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"},
                   "parent": {"uri": "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3jzfcijpj2z2a", "cid": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}},
         "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": {"$type": "blob", "ref": {"$link": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}, "mimeType": "image/png", "size": 1000},
                                                                  "aspectRatio": {"width": 1, "height": 2}}]}},
        {"$type": "app.bsky.actor.profile", "displayName": "Alice", "description": "x" * 300,
         "avatar": {"$type": "blob", "ref": {"$link": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}, "mimeType": "image/jpeg", "size": 100},
         "labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "!no-unauthenticated"}]}},
        {"repo": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "collection": "app.bsky.feed.post", "rkey": "3jzfcijpj2z2a", "validate": True,
         "record": {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2023-11-14T22:13:20Z"}},
        {"repo": "alice.test", "writes": [{"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "value": {"text": "x"}},
                                          {"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post", "rkey": "self"}]},
        {"handle": "alice.test", "email": "a@example.com", "password": "hunter2", "inviteCode": "x-y"},
        {"preferences": [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": False}]},
    ]
    for record in records:
        corpus.add(b"\x01" + compact(record))
    for path in sorted(glob.glob(vec("extra", "indigo", "atproto", "repo", "testdata", "firehose_commit_*.json")))[:2]:
        with open(path, "rb") as f:
            corpus.add(b"\x01" + f.read())
    with open(vec("extra", "indigo", "testing", "testdata", "feedpost_record.cbor"), "rb") as f:
        corpus.add(b"\x02" + f.read())
    with open(vec("extra", "indigo", "testing", "testdata", "greenground.repo.car"), "rb") as f:
        for cid, block in car_sections(f.read())[1][:400]:
            if cid[1] == 0x71 and (b"app.bsky." in block):
                corpus.add(b"\x02" + block)
    for query in (
        "repo=did:plc:ewvi7nxzyoun6zhxrhs64oiz&collection=app.bsky.feed.post&limit=50&reverse=true&cursor=3jzfcijpj2z2a",
        "repo=alice.test&collection=app.bsky.feed.post&rkey=self&cid=bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a",
        "did=did:plc:ewvi7nxzyoun6zhxrhs64oiz&since=3jzfcijpj2z2a",
        "limit=1001&cursor=abc", "limit=-1", "limit=1e3",
        "actor=alice.test&filter=posts_with_media&includePins=false&limit=100",
        "nsid=app.bsky.feed.post", "nsid=..",
    ):
        corpus.add(b"\x03" + query.encode("utf-8"))
    return corpus


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError(n)


class Link(bytes):
    """A CID (binary form) to be encoded as a DAG-CBOR link."""


def cbor(value):
    """Minimal DAG-CBOR encoder: None, int >= 0, str, bytes, Link, list, dict (keys sorted)."""
    if value is None:
        return b"\xf6"
    if isinstance(value, Link):
        return b"\xd8\x2a" + cbor_head(2, len(value) + 1) + b"\0" + value
    if isinstance(value, bytes):
        return cbor_head(2, len(value)) + value
    if isinstance(value, int):
        return cbor_head(0, value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return cbor_head(3, len(raw)) + raw
    if isinstance(value, list):
        return cbor_head(4, len(value)) + b"".join(cbor(v) for v in value)
    keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
    return cbor_head(5, len(keys)) + b"".join(cbor(k) + cbor(value[k]) for k in keys)


def cid_of(block):
    return Link(b"\x01\x71\x12\x20" + hashlib.sha256(block).digest())


def mst_height(key):
    digest, zeros = hashlib.sha256(key.encode()).digest(), 0
    for byte in digest:
        if byte:
            zeros += (8 - byte.bit_length())
            break
        zeros += 8
    return zeros // 2


def build_mst(items, height, blocks):
    """items: sorted [(key, height, value Link)]; appends node blocks (parent first) to blocks."""
    def subtree(gap):
        return build_mst(gap, height - 1, blocks) if gap and height > 0 else None
    slot = len(blocks)
    blocks.append(None)
    entries, gap, left, prev_key = [], [], None, b""
    for key, h, value in items:
        if h < height:
            gap.append((key, h, value))
            continue
        sub = subtree(gap)
        if entries:
            entries[-1]["t"] = sub
        else:
            left = sub
        gap = []
        raw = key.encode()
        prefix = len(os.path.commonprefix([prev_key, raw]))
        entries.append({"k": raw[prefix:], "p": prefix, "t": None, "v": value})
        prev_key = raw
    sub = subtree(gap)
    if entries:
        entries[-1]["t"] = sub
    else:
        left = sub
    block = cbor({"e": entries, "l": left})
    blocks[slot] = block
    return cid_of(block)


def repo_car(keys):
    """A version 3 repository CAR (zero signature: the repo_verify target re-signs it) whose keys all
    point at two records."""
    records = [cbor({"$type": "app.bsky.feed.post", "text": f"post {i}", "createdAt": "2023-11-14T22:13:20.000Z"}) for i in range(2)]
    items = sorted((k, mst_height(k), cid_of(records[i % 2])) for i, k in enumerate(keys))
    nodes = []
    root = build_mst(items, max(h for _, h, _ in items), nodes)
    commit = cbor({"did": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "rev": "3jzfcijpj2z2a", "sig": bytes(64), "data": root, "prev": None, "version": 3})
    commit_cid = cid_of(commit)
    out = bytearray()
    header = cbor({"roots": [commit_cid], "version": 1})
    out += varint_bytes(len(header)) + header
    for block in [commit, *nodes, *records]:
        section = cid_of(block) + block
        out += varint_bytes(len(section)) + section
    return bytes(out)


def varint_bytes(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def generated_repos():
    """Repositories the vectors lack: many records (several layers), one wide node (every key at
    height 0), and a deep narrow tree (one key per height 0..5, so empty layers are skipped)."""
    keys = [f"app.bsky.feed.{c}/3k{i:011d}" for i in range(120) for c in ("post", "like")][:150]
    yield repo_car(keys)
    wide, i = [], 0
    while len(wide) < 150:
        key = f"app.bsky.graph.follow/3k{i:011d}"
        if mst_height(key) == 0:
            wide.append(key)
        i += 1
    yield repo_car(wide)
    deep, i, want = [], 0, set(range(6))
    while want:
        key = f"com.example.record/{i:013d}"
        if mst_height(key) in want:
            want.discard(mst_height(key))
            deep.append(key)
        i += 1
    yield repo_car(deep)


def seed_repo_verify():
    """Mode byte, then a CAR: 0 as is; 1 rehashed and re-signed by the target."""
    corpus = Corpus("repo_verify")
    for data in car_files():
        if len(data) <= 1 << 20:
            corpus.add(b"\x00" + data)
            corpus.add(b"\x01" + data)
    for data in generated_repos():
        corpus.add(b"\x00" + data)
        corpus.add(b"\x01" + data)
    return corpus


def main():
    corpora = [*seed_car_and_cbor(), seed_json(), seed_syntax(), seed_did_key(), seed_jwt(), seed_lexicon(), seed_repo_verify()]
    for corpus in corpora:
        files = len(os.listdir(corpus.dir))
        print(f"{os.path.relpath(corpus.dir, FUZZ)}: {corpus.count} seeds offered, {files} files")


if __name__ == "__main__":
    main()
