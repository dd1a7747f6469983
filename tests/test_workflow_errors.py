"""Bad input stops the real workflow with a message that says what to fix, and leaves no output."""

from __future__ import annotations

import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import scipy.sparse as sp
from workflow_helpers import run_snakemake, synthetic_tumour, write_config, write_sheet

pytestmark = pytest.mark.workflow


def ingest(workdir, adata_or_bytes, expect_error=True, **row):
    """Write the input, a one-row sheet and a config; run the workflow up to the sample table."""
    (workdir / "data").mkdir(exist_ok=True)
    source = workdir / "data" / "input.h5ad"
    if isinstance(adata_or_bytes, bytes):
        source.write_bytes(adata_or_bytes)
    else:
        adata_or_bytes.write_h5ad(source)
    sheet_row = {
        "id": "bad",
        "source": "data/input.h5ad",
        "format": "h5ad",
        "sample_column": "patient",
    }
    sheet_row.update(row)
    config = write_config(workdir, write_sheet(workdir / "datasets.tsv", [sheet_row]))
    result = run_snakemake(workdir, config, "results/bad/samples.tsv", cores=1)
    if expect_error:
        assert result.returncode != 0
        assert not (workdir / "results" / "bad" / "ingested.h5ad").exists()
        assert not (workdir / "results" / "bad" / "samples.tsv").exists()
        assert not list((workdir / "results" / "bad").glob(".*.tmp*"))
    return result.stdout + result.stderr


def test_truncated_h5ad_is_named(tmp_path):
    whole = tmp_path / "whole.h5ad"
    synthetic_tumour().write_h5ad(whole)
    output = ingest(tmp_path, whole.read_bytes()[:5000])
    assert "data/input.h5ad" in output and "truncated" in output


def test_missing_sample_column_is_named_with_the_available_ones(tmp_path):
    output = ingest(tmp_path, synthetic_tumour(), sample_column="donor")
    assert "'donor'" in output and "patient" in output


def test_missing_cell_type_column_is_named(tmp_path):
    output = ingest(tmp_path, synthetic_tumour(), cell_type_column="celltype")
    assert "'celltype'" in output


def test_sample_names_that_would_escape_results_are_refused(tmp_path):
    adata = synthetic_tumour()
    adata.obs["patient"] = adata.obs["patient"].replace({"P1": "../../etc"})
    output = ingest(tmp_path, adata)
    assert "../../etc" in output
    assert not (tmp_path / "etc").exists()


def test_negative_counts_are_refused(tmp_path):
    adata = synthetic_tumour()
    dense = adata.X.toarray()
    dense[3, 5] = -2
    adata.X = sp.csr_matrix(dense)
    output = ingest(tmp_path, adata)
    assert "negative" in output.lower()


def test_nan_values_are_refused(tmp_path):
    adata = synthetic_tumour()
    adata.X = adata.X.toarray()
    adata.X[7, 2] = np.nan
    output = ingest(tmp_path, adata)
    assert "NaN" in output


def test_empty_sample_after_qc_names_the_sample_and_thresholds(tmp_path):
    output = ingest(tmp_path, synthetic_tumour(), min_genes="100000")
    assert "P1" in output and "min_genes" in output


def test_mouse_data_declared_human_is_refused(tmp_path):
    adata = synthetic_tumour()
    adata.var_names = [name.capitalize() for name in adata.var_names]
    output = ingest(tmp_path, adata)
    assert "mouse" in output.lower() and "species" in output.lower()


def test_ensembl_ids_declared_as_symbols_are_refused(tmp_path):
    adata = synthetic_tumour()
    adata.var_names = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    output = ingest(tmp_path, adata)
    assert "Ensembl" in output and "gene_id" in output


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


def test_a_bad_sheet_column_is_not_ingested_again_on_retry(tmp_path):
    output = ingest(tmp_path, synthetic_tumour(), sample_column="no_such_column")
    assert "no_such_column" in output
    log = next((tmp_path / "logs" / "ingest").glob("bad.log")).read_text()
    assert "not retried: attempt 2 failed on an input error" in log
