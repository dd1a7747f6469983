"""Bad input stops the real workflow with a message that says what to fix, and leaves no output.

The inputs that the ingest job itself refuses or handles are datasets of one sheet, ingested by
one run with ``--keep-going`` (as a user with several datasets meets them: each dataset's job fails
or succeeds on its own); each test reads its own dataset's outputs and log.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from workflow_helpers import (
    TUMOUR_ROW,
    run_snakemake,
    synthetic_tumour,
    write_config,
    write_sheet,
)

pytestmark = pytest.mark.workflow

#: Inputs of the shared ingest run, by dataset id: the builder of the input and its sheet fields.
INPUTS: dict[str, tuple] = {}


def ingest_input(dataset: str, **row):
    """Register the decorated builder's AnnData (or raw bytes) as the input of ``dataset``."""

    def register(build):
        INPUTS[dataset] = (build, row)
        return build

    return register


@dataclass
class IngestRun:
    """The shared run's working directory."""

    workdir: Path

    def log(self, dataset: str) -> str:
        return (self.workdir / "logs" / "ingest" / f"{dataset}.log").read_text()

    def refused(self, dataset: str) -> str:
        """The dataset's ingest log, once checked that the job left no output and no temporary."""
        folder = self.workdir / "results" / dataset
        assert not (folder / "ingested.h5ad").exists(), f"{dataset} was ingested"
        assert not (folder / "samples.tsv").exists(), f"{dataset} was ingested"
        assert not list(folder.glob(".*.tmp*")), f"{dataset} left a temporary"
        return self.log(dataset)

    def ingested(self, dataset: str) -> ad.AnnData:
        path = self.workdir / "results" / dataset / "ingested.h5ad"
        assert path.exists(), self.log(dataset)[-3000:]
        return ad.read_h5ad(path)


@pytest.fixture(scope="module")
def ingest_run(tmp_path_factory) -> IngestRun:
    workdir = tmp_path_factory.mktemp("ingest")
    (workdir / "data").mkdir()
    rows = []
    for dataset, (build, fields) in INPUTS.items():
        data, source = build(), workdir / "data" / f"{dataset}.h5ad"
        if isinstance(data, bytes):
            source.write_bytes(data)
        else:
            data.write_h5ad(source)
        row = {"id": dataset, "source": f"data/{dataset}.h5ad", "format": "h5ad"}
        rows.append({**row, "sample_column": "patient", **fields})
    config = write_config(workdir, write_sheet(workdir / "datasets.tsv", rows))
    targets = [f"results/{dataset}/samples.tsv" for dataset in INPUTS]
    run_snakemake(workdir, config, "--keep-going", *targets)  # exits non-zero: most inputs are bad
    return IngestRun(workdir)


# ---------------------------------------------------------------- refused or handled in ingest


def _h5ad_bytes(adata: ad.AnnData) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "whole.h5ad"
        adata.write_h5ad(path)
        return path.read_bytes()


@ingest_input("truncated")
def truncated_h5ad():
    return _h5ad_bytes(synthetic_tumour())[:5000]


def test_truncated_h5ad_is_named(ingest_run):
    output = ingest_run.refused("truncated")
    assert "data/truncated.h5ad" in output and "truncated" in output


@ingest_input("no_donor", sample_column="donor")
def without_the_sample_column():
    return synthetic_tumour()


def test_missing_sample_column_is_named_with_the_available_ones(ingest_run):
    output = ingest_run.refused("no_donor")
    assert "'donor'" in output and "patient" in output


@ingest_input("no_celltype", cell_type_column="celltype")
def without_the_cell_type_column():
    return synthetic_tumour()


def test_missing_cell_type_column_is_named(ingest_run):
    assert "'celltype'" in ingest_run.refused("no_celltype")


@ingest_input("escape")
def sample_name_escaping_results():
    adata = synthetic_tumour()
    adata.obs["patient"] = adata.obs["patient"].replace({"P1": "../../etc"})
    return adata


def test_sample_names_that_would_escape_results_are_refused(ingest_run):
    assert "../../etc" in ingest_run.refused("escape")
    assert not (ingest_run.workdir / "etc").exists()


@ingest_input("negative")
def negative_count():
    adata = synthetic_tumour()
    dense = adata.X.toarray()
    dense[3, 5] = -2
    adata.X = sp.csr_matrix(dense)
    return adata


def test_negative_counts_are_refused(ingest_run):
    assert "negative" in ingest_run.refused("negative").lower()


@ingest_input("nan")
def nan_value():
    adata = synthetic_tumour()
    adata.X = adata.X.toarray()
    adata.X[7, 2] = np.nan
    return adata


def test_nan_values_are_refused(ingest_run):
    assert "NaN" in ingest_run.refused("nan")


@ingest_input("empty_after_qc", min_genes="100000")
def stricter_qc_than_any_cell_passes():
    return synthetic_tumour()


def test_empty_sample_after_qc_names_the_sample_and_thresholds(ingest_run):
    output = ingest_run.refused("empty_after_qc")
    assert "P1" in output and "min_genes" in output


@ingest_input("mouse")
def mouse_symbols():
    adata = synthetic_tumour()
    adata.var_names = [name.capitalize() for name in adata.var_names]
    return adata


def test_mouse_data_declared_human_is_refused(ingest_run):
    output = ingest_run.refused("mouse").lower()
    assert "mouse" in output and "species" in output


@ingest_input("ensembl_as_symbols")
def ensembl_ids_in_a_symbol_sheet_row():
    adata = synthetic_tumour()
    adata.var_names = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    return adata


def test_ensembl_ids_declared_as_symbols_are_refused(ingest_run):
    output = ingest_run.refused("ensembl_as_symbols")
    assert "Ensembl" in output and "gene_id" in output


@ingest_input("no_such_column", sample_column="no_such_column")
def a_sheet_column_the_data_lack():
    return synthetic_tumour()


def test_a_bad_sheet_column_is_not_ingested_again_on_retry(ingest_run):
    output = ingest_run.refused("no_such_column")
    assert "no_such_column" in output
    assert "not retried: attempt 2 failed on an input error" in output


@ingest_input("all_zero")
def all_zero_matrix():
    adata = synthetic_tumour()
    adata.X = sp.csr_matrix(adata.shape, dtype=np.float32)
    return adata


def test_all_zero_matrix_names_the_qc_thresholds_not_a_traceback(ingest_run):
    output = ingest_run.refused("all_zero")
    assert "no cells left after QC" in output and "min_genes=5" in output
    assert "has any count" in output and "data/all_zero.h5ad" in output
    assert "unexpected failure" not in output and "Traceback" not in output


@ingest_input("unknown_ensembl", gene_id="ensembl")
def ensembl_ids_of_no_gene():
    adata = synthetic_tumour()
    adata.var_names = [f"ENSG9{i:010d}.3" for i in range(adata.n_vars)]
    return adata


def test_ensembl_ids_absent_from_gencode_are_refused_in_ingest(ingest_run):
    output = ingest_run.refused("unknown_ensembl")
    assert "only 0 of" in output and "(0.0%) map to a GENCODE v44" in output
    assert "ENSG90000000000" in output and "release" in output


@ingest_input("rat", gene_id="ensembl")
def rat_ensembl_ids():
    adata = synthetic_tumour()
    adata.var_names = [f"ENSRNOG{i:011d}" for i in range(adata.n_vars)]
    return adata


def test_another_species_ensembl_ids_are_refused_with_their_prefix(ingest_run):
    output = ingest_run.refused("rat")
    assert "ENSRNOG" in output and "another species" in output


@ingest_input("par_y", gene_id="ensembl")
def ensembl_ids_with_a_par_y_suffix():
    adata = synthetic_tumour()
    adata.var_names = [f"ENSG{i:011d}.5_PAR_Y" for i in range(adata.n_vars)]
    return adata


def test_ensembl_ids_with_foreign_suffixes_are_named_as_not_gene_ids(ingest_run):
    output = ingest_run.refused("par_y")
    assert "not Ensembl gene ids" in output and "_PAR_Y" in output


@ingest_input("long_name")
def sample_name_of_300_characters():
    adata = synthetic_tumour()
    adata.obs["patient"] = adata.obs["patient"].replace({"P1": "P" * 300})
    return adata


def test_sample_name_too_long_for_a_folder_is_refused_at_ingest(ingest_run):
    output = ingest_run.refused("long_name")
    assert "300 characters" in output and "longer than 100 characters" in output


@ingest_input("accents")
def sample_names_with_spaces_and_accents():
    adata = synthetic_tumour()
    adata.obs["patient"] = adata.obs["patient"].replace({"P1": "patient 1", "P2": "Zoë"})
    return adata


def test_sample_names_with_spaces_and_accents_become_safe_folders(ingest_run):
    ingest_run.ingested("accents")
    samples = (ingest_run.workdir / "results" / "accents" / "samples.tsv").read_text()
    assert "patient_1" in samples and "Zo_" in samples


@ingest_input("estimated_counts")
def low_depth_estimated_counts():
    # low-depth estimated counts (e.g. RSEM): non-integer and no larger than logged values can
    # be, but a cell's sum of expm1 far above any normalisation target (1e6, CPM)
    adata = synthetic_tumour()
    rng = np.random.default_rng(1)
    adata.X.data = adata.X.data * rng.uniform(0.7, 0.95, adata.X.data.size)
    assert adata.X.data.max() <= 20
    assert np.expm1(adata.X.toarray()).sum(axis=1).max() > 1e6
    return adata


def test_non_integer_counts_that_are_not_logs_are_normalised(ingest_run):
    ingested = ingest_run.ingested("estimated_counts")
    assert ingested.uns["seedsoil"]["input_scale"] == "normalised"
    totals = np.expm1(ingested.X.toarray()).sum(axis=1)
    np.testing.assert_allclose(totals, 1e4, rtol=1e-4)  # float32 X


def test_duplicated_gene_columns_of_a_csv_are_summed_with_a_warning(tmp_path):
    adata = synthetic_tumour(n_filler=50)
    # FILLER0001X, not FILLER0001: numbered runs read as cell names when telling the axes apart
    genes = [f"{name}X" if name.startswith("FILLER") else name for name in adata.var_names]
    frame = pd.DataFrame(adata.X.toarray(), index=adata.obs_names, columns=genes)
    doubled = pd.concat([frame, frame[["KRT8", "PTPRC"]]], axis=1)  # KRT8, PTPRC twice
    (tmp_path / "data").mkdir()
    doubled.to_csv(tmp_path / "data" / "input.csv")
    row = {"id": "bad", "source": "data/input.csv", "format": "csv"}
    config = write_config(tmp_path, write_sheet(tmp_path / "datasets.tsv", [row]))
    result = run_snakemake(tmp_path, config, "results/bad/samples.tsv", cores=1)
    assert result.returncode == 0, result.stderr[-3000:]
    ingested = ad.read_h5ad(tmp_path / "results" / "bad" / "ingested.h5ad")
    assert ingested.var_names.is_unique and "KRT8.1" not in ingested.var_names
    np.testing.assert_array_equal(
        ingested[:, "KRT8"].layers["counts"].toarray().ravel(), 2 * frame["KRT8"].to_numpy()
    )
    assert any("summed" in w for w in ingested.uns["seedsoil"]["warnings"])


# ---------------------------------------------------------------- fetched from a URL


def test_duplicate_dataset_ids_stop_the_run_before_any_job(tmp_path):
    (tmp_path / "data").mkdir()
    synthetic_tumour().write_h5ad(tmp_path / "data" / "a.h5ad")
    row = {"id": "same", "source": "data/a.h5ad", "format": "h5ad"}
    config = write_config(tmp_path, write_sheet(tmp_path / "datasets.tsv", [row, row]))
    result = run_snakemake(tmp_path, config, "-n")
    assert result.returncode != 0
    assert "duplicate dataset id" in result.stdout + result.stderr


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / "served"``."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fetch_then_ingest(tmp_path, url, sha256):
    row = {
        "id": "remote",
        "source": url,
        "format": "h5ad",
        "sample_column": "patient",
        "sha256": sha256,
    }
    config = write_config(tmp_path, write_sheet(tmp_path / "datasets.tsv", [row]))
    return run_snakemake(tmp_path, config, "results/remote/samples.tsv", cores=1)


def test_url_source_is_downloaded_verified_and_ingested(tmp_path, http_server):
    served, base = http_server
    synthetic_tumour().write_h5ad(served / "tumour.h5ad")
    digest = hashlib.sha256((served / "tumour.h5ad").read_bytes()).hexdigest()
    result = fetch_then_ingest(tmp_path, f"{base}/tumour.h5ad", digest)
    assert result.returncode == 0, result.stderr[-3000:]
    downloaded = tmp_path / "resources" / "downloads" / "url" / "remote" / "tumour.h5ad"
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == digest
    assert (tmp_path / "results" / "remote" / "samples.tsv").read_text().count("\n") == 3


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, http_server):
    served, base = http_server
    synthetic_tumour().write_h5ad(served / "tumour.h5ad")
    result = fetch_then_ingest(tmp_path, f"{base}/tumour.h5ad", "0" * 64)
    assert result.returncode != 0
    assert "sha256" in result.stdout + result.stderr
    folder = tmp_path / "resources" / "downloads" / "url" / "remote"
    assert not folder.exists() or not any(folder.iterdir())


def test_a_checksum_mismatch_is_downloaded_once_not_on_every_retry(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    synthetic_tumour().write_h5ad(served / "tumour.h5ad")
    requests = []

    class Counting(SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server name)
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Counting, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/tumour.h5ad"
        result = fetch_then_ingest(tmp_path, url, "0" * 64)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode != 0
    assert requests == ["/tumour.h5ad"]  # fetch_url has retries: 2
    assert "not retried" in result.stdout + result.stderr


# ---------------------------------------------------------------- checked before any job


def test_sheet_with_a_header_and_no_rows_stops_before_any_job(tmp_path):
    config = write_config(tmp_path, write_sheet(tmp_path / "datasets.tsv", []))
    result = run_snakemake(tmp_path, config, cores=1)
    assert result.returncode != 0
    assert "header but no dataset rows" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_every_problem_of_sheet_and_signature_files_is_listed_before_any_job(tmp_path):
    (tmp_path / "data").mkdir()
    synthetic_tumour().write_h5ad(tmp_path / "data" / "tumour.h5ad")
    (tmp_path / "sets").mkdir()
    malformed = tmp_path / "sets" / "malformed.gmt"
    malformed.write_text("MY_SET\tdescription only\n")
    rows = [TUMOUR_ROW, {"id": "gone", "source": "data/missing.h5ad", "format": "h5ad"}]
    config = write_config(
        tmp_path,
        write_sheet(tmp_path / "datasets.tsv", rows),
        signatures={"gmt": ["sets/malformed.gmt", "sets/not_there.gmt"]},
    )
    result = run_snakemake(tmp_path, config, cores=1)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "3 problem(s)" in output
    assert "data/missing.h5ad" in output
    assert "malformed.gmt: line 1" in output
    # reported where the user wrote it, not under the workflow's folder
    assert "sets/not_there.gmt: signature GMT file not found" in output
    assert not (tmp_path / "results").exists()
