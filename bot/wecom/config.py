"""WeCom connection settings: the WAIHU_WECOM_* and WAIHU_SMS_* part of `bot.core.settings`.

| variable | meaning |
|---|---|
| WAIHU_WECOM_API_BASE | default https://qyapi.weixin.qq.com (the local test server's URL in the demo) |
| WAIHU_WECOM_CORP_ID | 企业ID (CorpID); also the callback's receiveid |
| WAIHU_WECOM_SECRET | the secret of the app configured for 客户联系 (gettoken's corpsecret) |
| WAIHU_WECOM_TOKEN | the callback Token set in the admin console (接收事件服务器) |
| WAIHU_WECOM_AES_KEY | the callback EncodingAESKey (43 characters) |
| WAIHU_WECOM_AGENT_ID | optional, the app's AgentID (only echoed in test callbacks) |
| WAIHU_WECOM_CALLBACK_MAX_SKEW_S | callbacks whose timestamp is further than this from now are replays (default 300) |
| WAIHU_SMS_PROVIDER | outbox (default: the wecom_sms_outbox table + log) or http |
| WAIHU_SMS_URL / WAIHU_SMS_TOKEN | the HTTP SMS gateway (POST JSON {phone, text, reference}) and its bearer token |
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.errors import UserError
from bot.core.settings import Settings, get_settings

QYAPI_BASE = "https://qyapi.weixin.qq.com"
DEFAULT_MAX_SKEW_S = 300.0


@dataclass(frozen=True)
class WeComSettings:
    corp_id: str
    secret: str
    token: str
    encoding_aes_key: str
    api_base: str = QYAPI_BASE
    agent_id: str = ""
    callback_max_skew_s: float = DEFAULT_MAX_SKEW_S

    @property
    def configured(self) -> bool:
        return bool(self.corp_id and self.secret)

    def require_api(self) -> WeComSettings:
        missing = [
            name
            for name, value in (("WAIHU_WECOM_CORP_ID", self.corp_id), ("WAIHU_WECOM_SECRET", self.secret))
            if not value
        ]
        if missing:
            raise UserError(
                f"WeCom is not configured: set {', '.join(missing)} (the CorpID and the 客户联系 app "
                "secret from the WeCom admin console)"
            )
        return self

    def require_callback(self) -> WeComSettings:
        missing = [
            name
            for name, value in (
                ("WAIHU_WECOM_CORP_ID", self.corp_id),
                ("WAIHU_WECOM_TOKEN", self.token),
                ("WAIHU_WECOM_AES_KEY", self.encoding_aes_key),
            )
            if not value
        ]
        if missing:
            raise UserError(
                f"the WeCom callback is not configured: set {', '.join(missing)} (the 接收事件服务器 "
                "Token and EncodingAESKey from the WeCom admin console)"
            )
        from bot.wecom.crypto import decode_aes_key

        try:
            decode_aes_key(self.encoding_aes_key)
        except ValueError as exc:
            raise UserError(f"WAIHU_WECOM_AES_KEY: {exc}") from None
        return self


def wecom_settings(settings: Settings | None = None) -> WeComSettings:
    settings = settings or get_settings()
    return WeComSettings(
        corp_id=settings.wecom_corp_id,
        secret=settings.wecom_secret,
        token=settings.wecom_token,
        encoding_aes_key=settings.wecom_aes_key,
        api_base=settings.wecom_api_base,
        agent_id=settings.wecom_agent_id,
        callback_max_skew_s=settings.wecom_callback_max_skew_s,
    )
