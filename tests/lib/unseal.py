#!/usr/bin/env python3
"""Read sealed virtkeep backups with Python's `cryptography`, following
docs/FORMAT.md ("Sealed archives and manifests") alone: no virtkeep code.

  unseal.py KEYRING MANIFEST OUT.raw ARCHIVE [ARCHIVE...]

Checks the manifest's HMAC, then opens each archive of a chain (the full
first): trailer, key unwrap, sealed index, every frame (GCM tag, zstd,
sha256), and writes the disk they rebuild (zero extents as holes) to OUT.raw.
"""
import hashlib
import hmac
import json
import struct
import subprocess
import sys
import tarfile

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap


def die(msg):
    print("unseal.py: " + msg, file=sys.stderr)
    sys.exit(1)


def load_keyring(path):
    keys = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        kid, hexkey, _state, _created = line.split()
        kek = bytes.fromhex(hexkey)
        want = hashlib.sha256(b"virtkeep-key-id" + kek).hexdigest()[:16]
        if want != kid:
            die(f"keyring line for {kid}: the id does not match the key")
        keys[kid] = kek
    return keys


def check_manifest(keys, path):
    text = open(path, "rb").read()
    m = json.loads(text)
    if m["version"] != 4 or m["encryption"]["algorithm"] != "aes-256-gcm":
        die("not a sealed manifest of version 4")
    auth = m["auth"]
    token = b'"' + auth.encode() + b'"'
    if not auth.startswith("hmac-sha256:") or text.count(token) != 1:
        die("the auth field is malformed")
    zeroed = text.replace(token, b'"hmac-sha256:' + b"0" * 64 + b'"')
    kek = keys[m["encryption"]["key_id"]]
    mkey = hmac.new(kek, b"virtkeep-manifest-mac", hashlib.sha256).digest()
    mac = hmac.new(mkey, zeroed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, auth[len("hmac-sha256:"):]):
        die(f"manifest {path} fails its HMAC")
    return m


def open_archive(keys, path):
    data = open(path, "rb").read()
    size = len(data)
    tail = data[size - 2048:]
    rlen = int(tail[124:136].rstrip(b"\0 ").decode(), 8)
    rec = tail[512:512 + rlen]
    if rlen != 256 or rec[:8] != b"VKARCHTR":
        die(f"{path}: not a sealed trailer")
    if hashlib.sha256(rec[:224]).digest() != rec[224:256]:
        die(f"{path}: the trailer fails its sha256")
    version, flags, ipos, ilen, next = struct.unpack_from("<IIQQQ", rec, 8)
    alg, = struct.unpack_from("<I", rec, 72)
    if (version, flags, alg) != (2, 1, 1):
        die(f"{path}: version {version}, flags {flags}, algorithm {alg}")
    prefix, wrapped = rec[76:80], rec[80:120]
    kid = rec[120:136].decode()
    sealed_index = data[ipos:ipos + ilen]
    if hashlib.sha256(sealed_index).digest() != rec[40:72]:
        die(f"{path}: the sealed index fails its sha256")
    dkey = aes_key_unwrap(keys[kid], wrapped)
    gcm = AESGCM(dkey)
    index = json.loads(gcm.decrypt(prefix + b"\xff" * 8, sealed_index, None))
    if len(index["extents"]) != next:
        die(f"{path}: the extent count differs from the trailer")
    # The member names say the same as the index (tar sees the frames).
    names = {m.offset_data: m.name for m in tarfile.open(path) if m.name.startswith("data/")}
    n = 0
    for e in index["extents"]:
        if e["kind"] != "data":
            continue
        want = "data/%016x-%016x.zst.sealed" % (e["offset"], e["length"])
        if names.get(e["position"]) != want:
            die(f"{path}: no member {want} at {e['position']}")
        nonce = prefix + struct.pack("<Q", n)
        aad = struct.pack("<QQ", e["offset"], e["length"])
        frame = gcm.decrypt(nonce, data[e["position"]:e["position"] + e["size"]], aad)
        raw = subprocess.run(["zstd", "-q", "-d", "-c"], input=frame, stdout=subprocess.PIPE,
                             check=True).stdout
        if len(raw) != e["length"] or hashlib.sha256(raw).hexdigest() != e["sha256"]:
            die(f"{path}: chunk at {e['offset']} fails its sha256")
        e["raw"] = raw
        n += 1
    return index


def main():
    keyring, manifest, out, archives = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    keys = load_keyring(keyring)
    check_manifest(keys, manifest)
    indexes = [open_archive(keys, a) for a in archives]
    vsize = indexes[-1]["header"]["virtual_size"]
    with open(out, "wb") as f:
        f.truncate(vsize)
        for idx in indexes:  # the full first: newer layers win
            for e in idx["extents"]:
                f.seek(e["offset"])
                if e["kind"] == "data":
                    f.write(e["raw"])
                else:
                    f.write(b"\0" * e["length"])
    print(f"unseal.py: {len(archives)} archive(s), {vsize} bytes, manifest authenticated")


main()
