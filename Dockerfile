# lumbar-imaging-cds: the CDS Hooks service, as a non-root user. `lumbar-cds serve` runs gunicorn
# with uvicorn workers: each receives request bodies on its event loop (10 s deadline, size limit)
# before one of its app threads runs the call, so slow clients never hold an app thread. Do not
# swap in gunicorn's own thread workers (--worker-class gthread): a slow body would hold a thread.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY cds_service ./cds_service
COPY cards ./cards
RUN pip install --no-cache-dir --upgrade pip wheel \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    # Production defaults: clients must sign their calls (CDS Hooks 2.0 "Trusting CDS Clients").
    CDS_AUTH_REQUIRED=true \
    # The sandbox's signing key is public (its repository ships it): never trusted in production
    # unless asked for. Behind a TLS-terminating proxy set CDS_PUBLIC_BASE_URL (JWT audience).
    CDS_TRUST_SANDBOX=false \
    CDS_DATABASE_PATH=/data/lumbar-cds.sqlite3
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /data --create-home cds
USER cds
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
# With authentication on (the default here) the image refuses to start, in one line (exit 2),
# until CDS_FHIR_ALLOWED_ORIGINS names the EHR FHIR origins it may call (the SSRF allowlist).
CMD ["lumbar-cds", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2", "--require-fhir-allowlist"]
