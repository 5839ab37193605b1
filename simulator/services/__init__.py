"""Each organisation's components as HTTP services (ASGI: FastAPI on uvicorn) over mutual TLS, and load tests.

See docs/services.md. This package must never implement a control: components decide, services carry.
"""
