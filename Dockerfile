# Container image for running seedsoil without conda:
#   docker build -t seedsoil .
#   docker run --rm -v "$PWD:/data" -w /data seedsoil snakemake --cores 4 --configfile my.yaml
# (or `apptainer build seedsoil.sif docker-daemon://seedsoil:latest` for clusters).
# The environment is the one the tests run in: every package pinned by requirements.lock.
FROM python:3.11-slim

WORKDIR /opt/seedsoil
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir --no-deps -r requirements.lock
COPY Snakefile ./
COPY workflow ./workflow
COPY resources ./resources
COPY config ./config
COPY profiles ./profiles
COPY envs ./envs
RUN pip install --no-cache-dir --no-deps -e .

# The workflow's files live in /opt/seedsoil; runs happen in the mounted working directory.
ENTRYPOINT ["snakemake", "--snakefile", "/opt/seedsoil/Snakefile"]
CMD ["--cores", "all"]
