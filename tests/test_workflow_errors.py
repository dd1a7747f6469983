"""Bad input stops the real workflow with a message that says what to fix, and leaves no output."""

from __future__ import annotations

import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

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


# ---------------------------------------------------------------- refused or handled in ingest


def test_all_zero_matrix_names_the_qc_thresholds_not_a_traceback(tmp_path):
    adata = synthetic_tumour()
    adata.X = sp.csr_matrix(adata.shape, dtype=np.float32)
    output = ingest(tmp_path, adata)
    assert "no cells left after QC" in output and "min_genes=5" in output
    assert "has any count" in output and "data/input.h5ad" in output
    assert "unexpected failure" not in output and "Traceback" not in output


def test_ensembl_ids_absent_from_gencode_are_refused_in_ingest(tmp_path):
    adata = synthetic_tumour()
    adata.var_names = [f"ENSG9{i:010d}.3" for i in range(adata.n_vars)]  # no such genes
    output = ingest(tmp_path, adata, gene_id="ensembl")
    assert "only 0 of" in output and "(0.0%) map to a GENCODE v44" in output
    assert "ENSG90000000000" in output and "release" in output


def test_another_species_ensembl_ids_are_refused_with_their_prefix(tmp_path):
    adata = synthetic_tumour()
    adata.var_names = [f"ENSRNOG{i:011d}" for i in range(adata.n_vars)]  # rat
    output = ingest(tmp_path, adata, gene_id="ensembl")
    assert "ENSRNOG" in output and "another species" in output


def test_sample_name_too_long_for_a_folder_is_refused_at_ingest(tmp_path):
    adata = synthetic_tumour()
    adata.obs["patient"] = adata.obs["patient"].replace({"P1": "P" * 300})
    output = ingest(tmp_path, adata)
    assert "300 characters" in output and "longer than 100 characters" in output


def test_sample_names_with_spaces_and_accents_become_safe_folders(tmp_path):
    adata = synthetic_tumour()
    adata.obs["patient"] = adata.obs["patient"].replace({"P1": "patient 1", "P2": "Zoë"})
    output = ingest(tmp_path, adata, expect_error=False)
    samples = (tmp_path / "results" / "bad" / "samples.tsv").read_text()
    assert "patient_1" in samples and "Zo_" in samples, output[-2000:]


def test_non_integer_counts_that_are_not_logs_are_normalised(tmp_path):
    # low-depth estimated counts (e.g. RSEM): non-integer and no larger than logged values can
    # be, but a cell's sum of expm1 far above any normalisation target (1e6, CPM)
    adata = synthetic_tumour()
    rng = np.random.default_rng(1)
    adata.X.data = adata.X.data * rng.uniform(0.7, 0.95, adata.X.data.size)
    assert adata.X.data.max() <= 20
    assert np.expm1(adata.X.toarray()).sum(axis=1).max() > 1e6
    ingest(tmp_path, adata, expect_error=False)
    ingested = ad.read_h5ad(tmp_path / "results" / "bad" / "ingested.h5ad")
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


def test_ensembl_ids_with_foreign_suffixes_are_named_as_not_gene_ids(tmp_path):
    adata = synthetic_tumour()
    adata.var_names = [f"ENSG{i:011d}.5_PAR_Y" for i in range(adata.n_vars)]
    output = ingest(tmp_path, adata, gene_id="ensembl")
    assert "not Ensembl gene ids" in output and "_PAR_Y" in output
