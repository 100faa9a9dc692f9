"""The FastAPI application."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import pool, problems, schedule
from api.limits import BodySizeLimit
from api.ratelimit import RateLimit
from api.openapi import document_problems
from api.platform import Platform
from api.routes import certificates, crl, documents, imports, licenses, ocsp, oauth, public, tsa, verify, verify_pdf
from api.routes import trust, verify_certificate
from api.routes import login, me, presentations
from api.routes import audit
from api.routes import grants
from eauth.settings import Settings


def create_app(settings: Settings | None = None, *, platform: Platform | None = None) -> FastAPI:
    """The app over an opened platform; opening fails fast (wrong passphrase, no init) before serving."""
    settings = settings or (platform.settings if platform else Settings())
    opened = platform or Platform.open(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with (schedule.background(opened), pool.worker_pool(settings) as workers,  # CRL refresh, signing
                    imports.router.lifespan_context(app)):  # the bulk imports running here
            app.state.signing_pool = workers
            yield
        if platform is None:
            opened.close()

    app = FastAPI(
        title="eauth",
        version="1",
        summary="Unified e-authentication platform: certificates, electronic licenses, verification.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.platform = opened
    problems.install(app)
    document_problems(app)
    # The routes go straight into the app's own table, hot paths first (the router tries them in order:
    # OCSP, then QR verification). Not include_router: FastAPI 0.16x keeps each included router as a
    # nested matcher that is walked twice per request, which measured ~60 % of a trivial request's CPU
    # time with our 18 routers. Every router's prefix and tags are already in its routes' paths and tags.
    for module in (ocsp, verify, oauth, certificates, public, tsa, crl, documents, licenses, imports, verify_pdf,
                   trust, verify_certificate, login, me, presentations, audit, grants):
        app.router.routes.extend(module.router.routes)
    limits = {"per_client": settings.rate_limit_per_client_per_minute,
              "per_address": settings.rate_limit_per_address_per_minute,
              "per_holder": settings.rate_limit_per_holder_per_minute,
              "per_revocation_address": settings.rate_limit_revocation_per_address_per_minute}
    if any(limits.values()):  # all 0: rate limiting is off, and costs nothing
        app.add_middleware(RateLimit, platform=opened, **limits)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes,
                       per_path={documents.SIGN_PATH: settings.max_document_bytes,
                                 imports.PATH: settings.max_document_bytes,
                                 verify_pdf.PATH: settings.max_document_bytes})
    return app
