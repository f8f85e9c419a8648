"""WeCom callback crypto against WeCom's own published sample vectors, then round trips
and the ways a forged or damaged callback must fail.

Source of the vectors: WeCom's official callback sample code, `callback/Sample.py` in
github.com/sbzhu/weworkapi_python (企业微信 WXBizMsgCrypt 使用demo, author jonyqin): the
VerifyURL example (使用示例一) and the DecryptMsg example (使用示例二), with the token,
EncodingAESKey and CorpID given there.
"""
from __future__ import annotations

import pytest

from bot.wecom.crypto import (BLOCK_SIZE, CallbackCrypto, CallbackRejected, decode_aes_key, encrypted_field,
                              signature)

SAMPLE_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
SAMPLE_AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
SAMPLE_CORP_ID = "ww1436e0e65a779aee"
SAMPLE = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_AES_KEY, SAMPLE_CORP_ID)

# 使用示例一：验证回调URL
VERIFY_SIGNATURE = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
VERIFY_TIMESTAMP = "1476416373"
VERIFY_NONCE = "47744683"
VERIFY_ECHOSTR = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="

# 使用示例二：对用户回复的消息解密
MESSAGE_SIGNATURE = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
MESSAGE_TIMESTAMP = "1476422779"
MESSAGE_NONCE = "1597212914"
MESSAGE_BODY = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl"
    "9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqf"
    "de0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp"
    "6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n"
    "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>")


def test_the_official_url_verification_sample_decrypts_to_its_echo():
    echo = SAMPLE.verify_and_decrypt(VERIFY_SIGNATURE, VERIFY_TIMESTAMP, VERIFY_NONCE, VERIFY_ECHOSTR)
    assert echo == "1288432023552776189"


def test_the_official_message_sample_verifies_and_decrypts():
    encrypted = encrypted_field(MESSAGE_BODY)
    assert signature(SAMPLE_TOKEN, MESSAGE_TIMESTAMP, MESSAGE_NONCE, encrypted) == MESSAGE_SIGNATURE
    message = SAMPLE.verify_and_decrypt(MESSAGE_SIGNATURE, MESSAGE_TIMESTAMP, MESSAGE_NONCE, encrypted)
    assert message == ("<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
                       "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
                       "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>")


def test_our_encryption_matches_the_sample_byte_for_byte_given_its_random_prefix():
    # The echo sample's first 16 plaintext bytes are its random prefix; encrypting the same
    # message with the same prefix must reproduce WeCom's ciphertext exactly (padding to 32).
    from base64 import b64decode

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = decode_aes_key(SAMPLE_AES_KEY)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(b64decode(VERIFY_ECHOSTR)) + decryptor.finalize()
    assert plain[-1] == 7 and len(plain) % BLOCK_SIZE == 0  # 57 bytes of data + 7 → 64: 32-byte blocks
    assert SAMPLE.encrypt("1288432023552776189", random_prefix=plain[:16]) == VERIFY_ECHOSTR


def test_round_trip_with_chinese_text_and_a_fresh_random_prefix_each_time():
    message = "<xml><State><![CDATA[w1abc]]></State><Content>欢迎添加顾问</Content></xml>"
    first, second = SAMPLE.encrypt(message), SAMPLE.encrypt(message)
    assert first != second  # random prefix
    assert SAMPLE.decrypt(first) == SAMPLE.decrypt(second) == message


def test_a_forged_or_altered_signature_is_rejected():
    encrypted = encrypted_field(MESSAGE_BODY)
    forged = "0" * 40
    with pytest.raises(CallbackRejected) as caught:
        SAMPLE.verify_and_decrypt(forged, MESSAGE_TIMESTAMP, MESSAGE_NONCE, encrypted)
    assert caught.value.reason == "bad_signature"
    # the right signature over a different timestamp: signed fields cannot be swapped
    with pytest.raises(CallbackRejected):
        SAMPLE.verify_and_decrypt(MESSAGE_SIGNATURE, str(int(MESSAGE_TIMESTAMP) + 1), MESSAGE_NONCE, encrypted)


def test_another_corp_or_another_key_cannot_pass():
    other_corp = CallbackCrypto(SAMPLE_TOKEN, SAMPLE_AES_KEY, "wwsomebodyelse000")
    with pytest.raises(CallbackRejected) as caught:
        other_corp.decrypt(VERIFY_ECHOSTR)
    assert caught.value.reason == "wrong_receiver"
    other_key = CallbackCrypto(SAMPLE_TOKEN, "a" * 43, SAMPLE_CORP_ID)
    with pytest.raises(CallbackRejected):
        other_key.decrypt(VERIFY_ECHOSTR)


def test_damaged_ciphertext_fails_cleanly():
    for bad in ("not base64!!", "QUJD", VERIFY_ECHOSTR[:-8] + "AAAAAAA="):
        with pytest.raises(CallbackRejected):
            SAMPLE.decrypt(bad)
    with pytest.raises(CallbackRejected):
        encrypted_field("<xml><ToUserName>x</ToUserName></xml>")
    with pytest.raises(ValueError):
        decode_aes_key("short")


def test_envelope_is_what_wecom_posts():
    signature_, body = SAMPLE.envelope("<xml><a>1</a></xml>", "1700000000", "12345", agent_id="1000002")
    encrypted = encrypted_field(body)
    assert "<AgentID><![CDATA[1000002]]></AgentID>" in body
    assert SAMPLE.verify_and_decrypt(signature_, "1700000000", "12345", encrypted) == "<xml><a>1</a></xml>"
