"""A stand-in for Stripe's API on 127.0.0.1 (the machine cannot reach Stripe): it answers
``POST /v1/checkout/sessions`` the way Stripe does and remembers what it was sent, so tests
can check the request the real ``stripe`` library made."""
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


class StripeDouble:
    def __init__(self):
        self.requests: list[dict] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = dict(parse_qsl(body, keep_blank_values=True))
                double.requests.append({"path": self.path, "form": form,
                                        "authorization": self.headers.get("Authorization")})
                if self.path != "/v1/checkout/sessions":
                    self._send(404, {"error": {"message": "unknown", "type": "invalid_request_error"}})
                    return
                session_id = f"cs_test_{uuid.uuid4().hex}"
                self._send(200, {
                    "id": session_id, "object": "checkout.session", "mode": "payment",
                    "url": f"{double.url}/pay/{session_id}", "payment_status": "unpaid",
                    "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                    "client_reference_id": form.get("client_reference_id"),
                    "metadata": {"account": form.get("metadata[account]"),
                                 "pack": form.get("metadata[pack]")}})

            def do_GET(self):  # noqa: N802  (the "Stripe-hosted" payment page)
                body = b"<html><body><h1>Stripe Checkout (test double)</h1></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def signed_event(event: dict, secret: str) -> tuple[bytes, str]:
    """A webhook body and its ``Stripe-Signature`` header, made by Stripe's own library."""
    import stripe

    payload = json.dumps(event)
    return payload.encode(), stripe.WebhookSignature.generate_signature_header(payload, secret)


def checkout_completed(session_id: str, amount_cents: int, event_id: str | None = None,
                       payment_intent: str = "pi_test_1") -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event",
            "type": "checkout.session.completed", "livemode": False, "api_version": "2024-06-20",
            "created": 1700000000,
            "data": {"object": {"id": session_id, "object": "checkout.session",
                                "payment_status": "paid", "amount_total": amount_cents,
                                "payment_intent": payment_intent}}}


def charge_refunded(payment_intent: str, amount_refunded: int) -> dict:
    return {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "charge.refunded",
            "livemode": False, "created": 1700000001,
            "data": {"object": {"id": "ch_test_1", "object": "charge",
                                "payment_intent": payment_intent,
                                "amount_refunded": amount_refunded}}}
