import logging

from gpubot.logs import RedactTokens


def _record(msg, *args, exc_info=None):
    return logging.LogRecord("slack_sdk", logging.DEBUG, __file__, 1, msg, args, exc_info)


def test_tokens_in_messages_and_arguments_are_redacted():
    redact = RedactTokens(secrets=["s3cr3t-app"])
    record = _record("body: token=%s other=%s", "xoxb-123-456-abc", "s3cr3t-app")
    redact.filter(record)
    assert record.getMessage() == "body: token=[redacted] other=[redacted]"


def test_any_token_shape_is_redacted_even_if_not_ours():
    redact = RedactTokens()
    record = _record("headers {'Authorization': 'Bearer xapp-1-A0-123-zz'} and xoxp-9-9")
    redact.filter(record)
    assert "xapp" not in record.getMessage() and "xoxp" not in record.getMessage()


def test_tracebacks_are_redacted():
    try:
        raise RuntimeError("bad token xoxb-1-2-3")
    except RuntimeError as error:
        record = _record("failed", exc_info=(type(error), error, error.__traceback__))
    RedactTokens().filter(record)
    assert "xoxb-1-2-3" not in (record.exc_text or "")
    assert "[redacted]" in record.exc_text
