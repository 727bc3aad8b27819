#!/usr/bin/env python3
"""Writes the SNS, PayPal and Pub/Sub vectors of ../providers-extra.json.

Independent of the Go code: the signed strings are built here from the
providers' documentation, signed with Python's `cryptography` package, and
every valid signature is checked again with the OpenSSL command line
(`openssl dgst -verify`). The keys and certificates beside this file are
test material made with `openssl req`/`x509` (a test CA standing in for the
public roots); the tests serve them from a local HTTPS key server.

    python3 webhookauth/testdata/fetched/make_vectors.py
"""
import base64, json, os, subprocess, sys, tempfile, zlib
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "providers-extra.json")


def key(name):
    with open(os.path.join(HERE, name + ".key"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def sign(name, data, algo):
    h = hashes.SHA1() if algo == "sha1" else hashes.SHA256()
    return key(name).sign(data, padding.PKCS1v15(), h)


def openssl_verify(cert_or_pub, data, sig, algo):
    """True when OpenSSL verifies sig over data."""
    with tempfile.TemporaryDirectory() as d:
        pub = os.path.join(d, "pub.pem")
        if cert_or_pub.endswith(".pem"):
            subprocess.run(["openssl", "x509", "-in", os.path.join(HERE, cert_or_pub), "-pubkey", "-noout", "-out", pub], check=True)
        else:
            subprocess.run(["openssl", "rsa", "-in", os.path.join(HERE, cert_or_pub), "-pubout", "-out", pub], check=True, capture_output=True)
        for n, b in (("data", data), ("sig", sig)):
            with open(os.path.join(d, n), "wb") as f:
                f.write(b)
        r = subprocess.run(["openssl", "dgst", "-" + algo, "-verify", pub, "-signature", os.path.join(d, "sig"), os.path.join(d, "data")], capture_output=True)
        return r.returncode == 0


# --- Amazon SNS: "Name\nValue\n" for each signed field, in this order
# (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message-verify-message-signature.html).
NOTIFICATION = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
TOPIC = "arn:aws:sns:us-east-1:123456789012:webhookauth-test"


def sns_string(msg):
    names = NOTIFICATION if msg["Type"] == "Notification" else CONFIRMATION
    return "".join(f"{n}\n{msg[n]}\n" for n in names if n in msg).encode()


def sns(name, expect, msg, version, signer="sns", note="", tamper=None):
    algo = "sha1" if version == "1" else "sha256"
    msg = dict(msg, SignatureVersion=version, SigningCertURL=CERT_URL)
    data = sns_string(msg)
    sig = sign(signer, data, algo)
    if expect == "valid":
        assert openssl_verify("sns.pem", data, sig, algo), name
    msg["Signature"] = base64.b64encode(sig).decode()
    if tamper:
        tamper(msg)
    return {
        "provider": "sns", "name": name, "kind": "delivery", "expect": expect,
        "scheme": {"summary": "RSA PKCS#1 v1.5 (SignatureVersion 1: SHA-1, 2: SHA-256) over \"Name\\nValue\\n\" of the message type's fields; certificate from SigningCertURL"},
        "source": "made for this file with test keys (webhookauth/testdata/fetched)",
        "doc": "https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html",
        "checked_by": "computed from the documented algorithm with python cryptography " + __import__("cryptography").__version__ + "; valid signatures verified again with `openssl dgst -verify` (OpenSSL CLI) against sns.pem",
        "method": "POST", "headers": {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": msg["Type"], "x-amz-sns-message-id": msg["MessageId"], "x-amz-sns-topic-arn": msg["TopicArn"]},
        "body": json.dumps(msg, indent=2), "verify_at": 1750000000, "note": note,
    }


base = {"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", "TopicArn": TOPIC,
        "Message": "{\"order\":42,\"status\":\"shipped\"}", "Timestamp": "2025-06-15T15:06:40.123Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + TOPIC + ":0000"}
withsubject = dict(base, Subject="Order shipped", MessageId="d4b5b6f0-8c2e-4b8e-9a51-3f0f2b8c1a77")
confirm = {"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "TopicArn": TOPIC,
           "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
           "Message": "You have chosen to subscribe to the topic " + TOPIC + ".\nTo confirm the subscription, visit the SubscribeURL included in this message.",
           "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC + "&Token=2336412f37fb",
           "Timestamp": "2025-06-15T15:06:40.123Z"}
unsubscribe = dict(confirm, Type="UnsubscribeConfirmation", MessageId="47138184-6831-46b8-8f7c-afc488602d7d",
                   Message="You have chosen to deactivate subscription " + TOPIC + ":0000.")

vectors = [
    sns("sns-notification-v1-valid", "valid", base, "1", note="SignatureVersion 1 (SHA1withRSA), no Subject"),
    sns("sns-notification-v2-subject-valid", "valid", withsubject, "2", note="SignatureVersion 2 (SHA256withRSA) with a Subject, which is signed"),
    sns("sns-subscription-confirmation-v2-valid", "valid", confirm, "2"),
    sns("sns-unsubscribe-confirmation-v1-valid", "valid", unsubscribe, "1"),
    sns("sns-message-altered", "invalid", base, "2", tamper=lambda m: m.update(Message="{\"order\":43,\"status\":\"shipped\"}")),
    sns("sns-subject-removed", "invalid", withsubject, "2", tamper=lambda m: m.pop("Subject")),
    sns("sns-version-swapped", "invalid", base, "1", tamper=lambda m: m.update(SignatureVersion="2"), note="signed with SHA-1, labelled 2"),
    sns("sns-signed-by-another-key", "invalid", base, "2", signer="paypal", note="signed with a key that is not the certificate's"),
]

# --- PayPal: "<transmission id>|<transmission time>|<webhook id>|<CRC32 of
# the body as an unsigned decimal>", SHA256withRSA, base64
# (https://developer.paypal.com/api/rest/webhooks/rest/#link-selfverificationmethod).
WEBHOOK_ID = "8PT597110X687430LKGECATA"
PAYPAL_CERT = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-test"


def paypal(name, expect, body, webhook_id=WEBHOOK_ID, tamper_body=None, note=""):
    tid, ts = "69cd13f0-d67a-11e5-baa3-778b53f4ae55", "2025-06-15T15:06:40Z"
    data = f"{tid}|{ts}|{webhook_id}|{zlib.crc32(body.encode()) & 0xffffffff}".encode()
    sig = sign("paypal", data, "sha256")
    if expect == "valid":
        assert openssl_verify("paypal.pem", data, sig, "sha256"), name
    return {
        "provider": "paypal", "name": name, "kind": "delivery", "expect": expect,
        "scheme": {"summary": "SHA256withRSA over transmission id|time|webhook id|CRC32(body) decimal; certificate from PAYPAL-CERT-URL"},
        "source": "made for this file with test keys (webhookauth/testdata/fetched)",
        "doc": "https://developer.paypal.com/api/rest/webhooks/rest/#link-selfverificationmethod",
        "checked_by": "computed from the documented algorithm with python cryptography and zlib.crc32; valid signatures verified again with `openssl dgst -verify` against paypal.pem",
        "method": "POST", "secret": WEBHOOK_ID,
        "headers": {"Content-Type": "application/json", "PAYPAL-TRANSMISSION-ID": tid, "PAYPAL-TRANSMISSION-TIME": ts,
                    "PAYPAL-TRANSMISSION-SIG": base64.b64encode(sig).decode(), "PAYPAL-CERT-URL": PAYPAL_CERT, "PAYPAL-AUTH-ALGO": "SHA256withRSA"},
        "body": tamper_body(body) if tamper_body else body, "verify_at": 1750000000, "note": note,
    }


pp = json.dumps({"id": "WH-2WR32451HC0233532-67976317FL4543714", "event_version": "1.0", "create_time": "2025-06-15T15:06:40.000Z",
                 "resource_type": "capture", "event_type": "PAYMENT.CAPTURE.COMPLETED", "summary": "Payment completed for $ 7.47 USD",
                 "resource": {"id": "42311647XV020574X", "amount": {"currency_code": "USD", "value": "7.47"}, "status": "COMPLETED"}}, separators=(",", ":"))
vectors += [
    paypal("paypal-valid", "valid", pp),
    paypal("paypal-body-altered", "invalid", pp, tamper_body=lambda b: b.replace("7.47", "9.47")),
    paypal("paypal-other-webhook-id", "invalid", pp, webhook_id="1JE4291016473214C", note="signed for another webhook id than the one configured (secret)"),
]


# --- Google Pub/Sub push: an RS256 JWT from accounts.google.com
# (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions).
def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


AUD = "https://hooks.example.com/pubsub"
ACCOUNT = "push-invoker@example-project.iam.gserviceaccount.com"


def pubsub(name, expect, claims, header=None, note=""):
    header = header or {"alg": "RS256", "kid": "test-kid-1", "typ": "JWT"}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())).encode()
    sig = sign("google", signing_input, "sha256")
    if expect == "valid":
        assert openssl_verify("google.key", signing_input, sig, "sha256"), name
    token = signing_input.decode() + "." + b64url(sig)
    body = json.dumps({"message": {"attributes": {"origin": "test"}, "data": base64.b64encode(b"hello").decode(), "messageId": "2070443601311540", "message_id": "2070443601311540",
                                   "publishTime": "2025-06-15T15:06:40.123Z", "publish_time": "2025-06-15T15:06:40.123Z"},
                       "subscription": "projects/example-project/subscriptions/webhookauth-push"}, separators=(",", ":"))
    return {
        "provider": "pubsub", "name": name, "kind": "delivery", "expect": expect,
        "scheme": {"summary": "Authorization: Bearer RS256 JWT; key from Google's JWKS by kid; iss accounts.google.com; aud; exp/iat"},
        "source": "made for this file with a test key (webhookauth/testdata/fetched/google.key, kid test-kid-1)",
        "doc": "https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions",
        "checked_by": "JWT built from RFC 7519/7515 and signed with python cryptography; valid signatures verified again with `openssl dgst -sha256 -verify`",
        "method": "POST", "secret": AUD, "headers": {"Content-Type": "application/json", "Authorization": "Bearer " + token},
        "body": body, "verify_at": 1750000000, "note": note,
    }


good = {"aud": AUD, "azp": "111111111111111111111", "email": ACCOUNT, "email_verified": True, "exp": 1750003600, "iat": 1750000000,
        "iss": "https://accounts.google.com", "sub": "111111111111111111111"}
vectors += [
    pubsub("pubsub-valid", "valid", good, note="secret is the audience configured"),
    pubsub("pubsub-issuer-without-scheme-valid", "valid", dict(good, iss="accounts.google.com")),
    pubsub("pubsub-other-audience", "invalid", dict(good, aud="https://other.example.com/push")),
    pubsub("pubsub-expired", "invalid", dict(good, iat=1749990000, exp=1749993600)),
    pubsub("pubsub-other-issuer", "invalid", dict(good, iss="https://evil.example.com")),
    pubsub("pubsub-unknown-kid", "invalid", good, header={"alg": "RS256", "kid": "not-published", "typ": "JWT"}),
]

# Google's own example token, published in the Pub/Sub docs (the "Validate
# tokens" example on authenticate-push-subscriptions), signed in 2019 with
# Google's key 7d680d8c…, which Google no longer publishes: the key set
# beside this file (google-2019.jwks.json) carries it, as recovered from a
# third-party test (terrateamio/terrateam, code/tests/jwt/test.ml) and
# checked against the token. Valid between iat 1550182335 and exp 1550185935.
with open(os.path.join(HERE, "google-doc-example.jwt")) as f:
    DOC_TOKEN = f.read().strip()
doc_body = json.dumps({"message": {"attributes": {"key": "value"}, "data": "SGVsbG8gQ2xvdWQgUHViL1N1YiEgSGVyZSBpcyBteSBtZXNzYWdlIQ==",
                                   "messageId": "2070443601311540", "message_id": "2070443601311540",
                                   "publishTime": "2021-02-26T19:13:55.749Z", "publish_time": "2021-02-26T19:13:55.749Z"},
                       "subscription": "projects/myproject/subscriptions/mysubscription"}, separators=(",", ":"))
doc_vec = {
    "provider": "pubsub", "name": "pubsub-google-doc-example-valid", "kind": "delivery", "expect": "valid",
    "scheme": {"summary": "Authorization: Bearer RS256 JWT from Google"},
    "source": "Google's example token from the Pub/Sub push authentication docs",
    "doc": "https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions",
    "checked_by": "google.golang.org/api/idtoken v0.315.0 Validate (clock at iat) and google-auth-library 11.3.4 OAuth2Client.verifyIdToken (Date mocked), with the key set google-2019.jwks.json",
    "method": "POST", "secret": "https://example.com", "headers": {"Content-Type": "application/json", "Authorization": "Bearer " + DOC_TOKEN},
    "body": doc_body, "verify_at": 1550182335 + 60, "note": "secret is the token's audience; the body is the docs' example push body",
}
doc_altered = dict(doc_vec, name="pubsub-google-doc-example-other-audience", expect="invalid", secret="https://example.org",
                   note="Google's token checked for another audience")
vectors += [doc_vec, doc_altered]

existing = []
if os.path.exists(OUT):
    with open(OUT) as f:
        existing = [v for v in json.load(f) if v["provider"] not in ("sns", "paypal", "pubsub")]
with open(OUT, "w") as f:
    json.dump(existing + vectors, f, indent=1)
    f.write("\n")
print(f"{len(vectors)} vectors written to {OUT}", file=sys.stderr)
