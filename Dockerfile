# The service, the seeder and the tools in one image; docker-compose.yml picks the command for each container.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv
# Dependencies first: the layer is reused as long as requirements.txt does not change. requirements.txt is the
# service's part of uv.lock (`make lock` writes it), every package with its hashes: the image gets what CI tested.
COPY requirements.txt .
RUN pip install --no-cache-dir --require-hashes -r requirements.txt

COPY app/ app/
COPY cluster/ cluster/
COPY seeder/ seeder/
COPY stress/ stress/
COPY toolkit/ toolkit/
COPY templates/ templates/
COPY static/ static/
COPY stress_test.py unreserve_all.py ./

# Nothing here needs root.
RUN useradd --create-home --uid 10001 library
USER library

EXPOSE 8888
CMD ["python", "-m", "app"]
