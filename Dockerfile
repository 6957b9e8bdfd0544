# Casella in a container: the same code and lock file as scripts/setup.sh.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
ENV CASELLA_DATA_DIR=/data
VOLUME /data
CMD ["casella", "serve", "--no-demo"]
