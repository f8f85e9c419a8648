"""WeCom callback encryption, as WeCom's WXBizMsgCrypt (加解密方案说明, document 90968).

- msg_signature = SHA-1 of the sorted, concatenated [token, timestamp, nonce, msg_encrypt].
- AESKey = Base64_Decode(EncodingAESKey + "="), 32 bytes; AES-256-CBC, IV = AESKey[:16].
- plaintext = 16 random bytes + 4-byte big-endian length of msg + msg + receiveid
  (the CorpID for an internal app), PKCS#7-padded to a multiple of 32 bytes.

Checked against the official sample vectors (tests/test_wecom_crypto.py). The time window
and nonce replay checks are ours (WXBizMsgCrypt does not do them): see bot.wecom.callback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_SIZE = 32  # WeCom pads to 32 bytes, not AES's 16
_RANDOM_PREFIX = 16
_AES_KEY_CHARS = 43
_CDATA_UNSAFE = "]]>"


class CallbackRejected(Exception):
    """A callback that must not be acted on; `reason` is a short code for the log, `status_code`
    the answer (403 for a failed check, 400 for malformed parameters, 413 for a body too large)."""

    def __init__(self, reason: str, detail: str = "", status_code: int = 403) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.status_code = status_code


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode("utf-8")).hexdigest()


def decode_aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != _AES_KEY_CHARS or not re.fullmatch(r"[A-Za-z0-9+/]+", encoding_aes_key):
        raise ValueError("EncodingAESKey must be the 43 characters (a-z, A-Z, 0-9) shown in the WeCom admin console")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError(f"EncodingAESKey is not Base64: {exc}") from None
    if len(key) != 32:
        raise ValueError("EncodingAESKey does not decode to 32 bytes")
    return key


@dataclass(frozen=True)
class CallbackCrypto:
    """Signs, encrypts and decrypts callback messages for one app (token, AES key, receiveid)."""

    token: str
    encoding_aes_key: str
    receive_id: str  # CorpID (internal app) or SuiteID (third-party app)

    @property
    def _key(self) -> bytes:
        return decode_aes_key(self.encoding_aes_key)

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return signature(self.token, timestamp, nonce, encrypted)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = self.sign(timestamp, nonce, encrypted)
        # constant time: a forger learns nothing from how fast a wrong signature fails
        if not hmac.compare_digest(expected.encode("ascii"), (msg_signature or "").lower().encode("ascii", "replace")):
            raise CallbackRejected("bad_signature", "msg_signature does not match")

    def encrypt(self, message: str, random_prefix: bytes | None = None) -> str:
        key = self._key
        body = message.encode("utf-8")
        plain = (
            (random_prefix or os.urandom(_RANDOM_PREFIX))
            + struct.pack("!I", len(body))
            + body
            + self.receive_id.encode("utf-8")
        )
        pad = BLOCK_SIZE - len(plain) % BLOCK_SIZE
        plain += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> str:
        """The message; CallbackRejected if it does not decrypt, or is for another receiveid."""
        key = self._key
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackRejected("bad_ciphertext", "Encrypt is not Base64") from None
        if not data or len(data) % 16:
            raise CallbackRejected("bad_ciphertext", "Encrypt is not whole AES blocks")
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK_SIZE or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackRejected("bad_ciphertext", "bad PKCS#7 padding")
        plain = plain[:-pad]
        if len(plain) < _RANDOM_PREFIX + 4:
            raise CallbackRejected("bad_ciphertext", "too short")
        (length,) = struct.unpack("!I", plain[_RANDOM_PREFIX : _RANDOM_PREFIX + 4])
        body = plain[_RANDOM_PREFIX + 4 : _RANDOM_PREFIX + 4 + length]
        receive_id = plain[_RANDOM_PREFIX + 4 + length :]
        if len(body) != length:
            raise CallbackRejected("bad_ciphertext", "length field exceeds the message")
        if not hmac.compare_digest(receive_id, self.receive_id.encode("utf-8")):
            raise CallbackRejected("wrong_receiver", "receiveid is not our CorpID")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackRejected("bad_ciphertext", "message is not UTF-8") from None

    def verify_and_decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> str:
        self.verify(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def envelope(
        self, message: str, timestamp: str, nonce: str, *, to_user: str | None = None, agent_id: str = ""
    ) -> tuple[str, str]:
        """(msg_signature, POST body) of a callback carrying `message`, as WeCom sends it."""
        encrypted = self.encrypt(message)
        body = (
            f"<xml><ToUserName>{cdata(to_user or self.receive_id)}</ToUserName>"
            f"<Encrypt>{cdata(encrypted)}</Encrypt><AgentID>{cdata(agent_id)}</AgentID></xml>"
        )
        return self.sign(timestamp, nonce, encrypted), body


def encrypted_field(body: bytes | str) -> str:
    """The <Encrypt> text of a callback POST body."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise CallbackRejected("bad_xml", str(exc)) from None
    node = root.find("Encrypt")
    text = (node.text or "").strip() if node is not None else ""
    if not text:
        raise CallbackRejected("bad_xml", "no <Encrypt> element")
    return text


def cdata(text: str) -> str:
    return "<![CDATA[" + text.replace(_CDATA_UNSAFE, "]]]]><![CDATA[>") + "]]>"
