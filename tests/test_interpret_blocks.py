"""The interpretation's block-wise and memory-lean paths give exactly the one-block results.

Cell types and CTC calls are computed in blocks of cells (``celltypes.BLOCK_CELLS``), with
integer neighbour counts, marker genes densified on access and per-cell strings shared; the
tables are read for the signatures interpretation uses. Each is compared here with the plain
computation it replaced, on small fixtures built in code.
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import seedsoil.interpret as interpret
from seedsoil.errors import InputError
from seedsoil.interpret import (
    celltypes,
    identity_graph,
    interpret_cells,
    interpret_communication,
    interpret_sample,
    load_pairs,
    read_cell_table,
    refine,
    signatures_read,
    summarise_interpretation,
)
from seedsoil.interpret.celltypes import (
    CELL_TYPE_SIGNATURES,
    MarkerColumns,
    assign_cell_types,
    near_detection,
    neighbour_index,
    neighbourhood_mean,
    robust_z,
    shared_strings,
    shipped_markers,
    smoothed_at_most,
    softmax,
)
from seedsoil.interpret.clusters import PARTNERS, partner_enrichment
from seedsoil.interpret.ctc import detected_genes


def _robust_z_whole_array(values):
    """robust_z as first written: whole-array expressions."""
    median = np.median(values, axis=0)
    scale = 1.4826 * np.median(np.abs(values - median), axis=0)
    spread = values.std(axis=0)
    scale = np.where(scale > 0, scale, spread)
    return np.where(scale > 0, (values - median) / np.where(scale > 0, scale, 1.0), 0.0)


def _softmax_whole_array(evidence):
    finite = np.isfinite(evidence)
    top = np.where(finite.any(axis=1), np.max(np.where(finite, evidence, -np.inf), axis=1), 0.0)
    weights = np.where(finite, np.exp(np.where(finite, evidence, 0.0) - top[:, None]), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


def _scores(n_cells=300, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.random((n_cells, 8))
    values[:, 3] = 0.0  # MAD 0 and standard deviation > 0: the fallback scale
    values[:4, 3] = 1.0
    values[:, 5] = 0.7  # a constant column: zeros
    return values


def test_robust_z_column_by_column_equals_the_whole_array_formula():
    values = _scores()
    np.testing.assert_array_equal(robust_z(values), _robust_z_whole_array(values))


@pytest.mark.parametrize("block", [1, 7, 64, 10_000])
def test_neighbourhood_means_posterior_and_near_detection_do_not_depend_on_the_block(
    monkeypatch, block
):
    values = _scores()
    neighbours = neighbour_index(robust_z(values), 15)
    evidence = values.copy()
    evidence[::5, 2] = -np.inf
    evidence[7] = -np.inf  # a row with no admissible type: zeros
    detected = np.random.default_rng(1).random((values.shape[0], 6)) < 0.3
    monkeypatch.setattr(celltypes, "BLOCK_CELLS", 10_000)
    one_block = (
        neighbourhood_mean(values, neighbours),
        softmax(evidence),
        near_detection(detected, neighbours),
    )
    monkeypatch.setattr(celltypes, "BLOCK_CELLS", block)
    np.testing.assert_array_equal(neighbourhood_mean(values, neighbours), one_block[0])
    np.testing.assert_array_equal(softmax(evidence), one_block[1])
    np.testing.assert_array_equal(softmax(evidence), _softmax_whole_array(evidence))
    in_place = evidence.copy()
    np.testing.assert_array_equal(softmax(in_place, out=in_place), one_block[1])
    np.testing.assert_array_equal(near_detection(detected, neighbours), one_block[2])
    smoothed = (values + neighbourhood_mean(values, neighbours)) / 2.0 <= 0.5
    np.testing.assert_array_equal(smoothed_at_most(values, neighbours, 0.5), smoothed)


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 6, 9, 14, 15])
def test_near_detection_is_a_third_of_the_neighbourhood_mean(k):
    rng = np.random.default_rng(k)
    detected = rng.random((120, 5)) < 0.4
    neighbours = rng.integers(0, 120, size=(120, k)).astype(np.int32)
    expected = neighbourhood_mean(detected.astype(np.float64), neighbours) >= 1 / 3
    np.testing.assert_array_equal(near_detection(detected, neighbours), expected)


def test_marker_columns_are_the_dense_float64_columns():
    matrix = sp.random(50, 4, density=0.3, format="csr", random_state=0, dtype=np.float32)
    columns = MarkerColumns(matrix, ["A", "B", "C", "D"])
    dense = matrix.toarray().astype(np.float64)
    assert list(columns) == ["A", "B", "C", "D"] and "B" in columns and "E" not in columns
    for k, gene in enumerate(columns):
        np.testing.assert_array_equal(columns[gene], dense[:, k])
    cells = np.array([3, 1, 40])
    np.testing.assert_array_equal(columns.rows(["D", "A"], cells), dense[cells][:, [3, 0]])


def test_detected_genes_equal_a_join_per_cell():
    rng = np.random.default_rng(0)
    detected = {g: rng.random(200) < 0.3 for g in ["EPCAM", "KRT8", "KRT18", "KRT19"]}
    expected = [",".join(g for g in detected if detected[g][i]) for i in range(200)]
    assert list(detected_genes(detected, 200)) == expected


def test_shared_strings_keep_the_values_with_one_object_per_distinct_string():
    values = np.array(["B", "T", "B", "unassigned"] * 3, dtype=object)
    shared = shared_strings(values)
    assert list(shared) == list(values)
    assert shared[0] is shared[2]


def _typed_sample(n_cells=400, seed=0):
    """Scores with a structure of types, p-values, FDRs and an AnnData of the marker genes."""
    rng = np.random.default_rng(seed)
    core, markers = shipped_markers()
    genes = sorted(
        {g for groups in core.values() for group in groups for g in group}
        | {g for genes in markers.values() for g in genes}
        | set(celltypes.contrast_genes())
        | {"PTPRC", "EPCAM", "KRT8", "KRT18"}
    )
    signatures = [*CELL_TYPE_SIGNATURES, "CTC_epithelial_identity", "EMT_bidirectional"]
    cells = [f"c{i}" for i in range(n_cells)]
    kind = rng.integers(0, len(signatures), n_cells)
    scores = rng.random((n_cells, len(signatures))) * 0.2
    scores[np.arange(n_cells), kind] += 0.5
    pvalues = np.round(rng.random((n_cells, len(signatures))) ** 2, 3)
    tables = [
        pd.DataFrame(v, index=cells, columns=signatures)
        for v in (scores, pvalues, np.clip(pvalues * 1.5, 0, 1))
    ]
    x = sp.random(n_cells, len(genes), density=0.1, format="csr", random_state=seed)
    x = x.astype(np.float32)
    obs = pd.DataFrame(
        {"cell_type": "unlabelled", "n_counts": rng.integers(500, 5000, n_cells).astype(float)},
        index=cells,
    )
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=genes)), tables


@pytest.mark.parametrize("block", [1, 13, 128])
def test_cell_types_in_blocks_equal_one_block(monkeypatch, block):
    adata, (scores, pvalues, fdr) = _typed_sample()
    core, markers = shipped_markers()
    options = {"pvalues": pvalues, "expression": adata, "core_markers": core}
    monkeypatch.setattr(celltypes, "BLOCK_CELLS", 1_000_000)
    whole = assign_cell_types(scores, fdr, marker_genes=markers, **options)
    monkeypatch.setattr(celltypes, "BLOCK_CELLS", block)
    blocks = assign_cell_types(scores, fdr, marker_genes=markers, **options)
    pd.testing.assert_frame_equal(blocks, whole, check_exact=True)
    assert (whole["assignment_markers"] != "").any()  # the markers path ran


def test_the_signatures_read_give_the_interpretation_of_the_whole_tables(tmp_path):
    adata, tables = _typed_sample(n_cells=200, seed=3)
    extra = np.random.default_rng(0).random((200, 2))
    for table in tables:  # programmes interpretation does not read
        table[["NICHE_Notch", "TGFB_SMAD_drive"]] = extra
    options = {"pairs": load_pairs(), "n_perm": 20, "random_state": 1}
    whole = interpret_sample(adata, *tables, **options)
    read = [t[signatures_read(t.columns)] for t in tables]
    assert "NICHE_Notch" not in read[0].columns
    assert "CTC_epithelial_identity" in read[0].columns
    subset = interpret_sample(adata, *read, **options)
    pd.testing.assert_frame_equal(subset[0], whole[0], check_exact=True)
    pd.testing.assert_frame_equal(subset[1], whole[1], check_exact=True)
    assert subset[2] == whole[2]
    # the workflow's two steps with the tables dropped in between give the same
    calls, summary = interpret_cells(adata, *read)
    table, summary = interpret_communication(adata, calls, summary, **options)
    pd.testing.assert_frame_equal(calls, whole[0], check_exact=True)
    pd.testing.assert_frame_equal(table, whole[1], check_exact=True)
    assert summary == whole[2] and list(summary) == list(whole[2])
    # and reading the signatures from Parquet gives the same columns
    path = tmp_path / "scores.parquet"
    tables[0].rename_axis("cell").to_parquet(path)
    pd.testing.assert_frame_equal(
        read_cell_table(path, adata.obs_names, signatures=True), read[0], check_names=False
    )


def test_identity_graph_searched_before_the_tables_gives_the_same_calls(tmp_path):
    # The workflow's order: the kNN graph from scores.parquet's cell-type columns alone (cells
    # stored in another order), then the tables; the calls equal those searched inside.
    adata, tables = _typed_sample(n_cells=300, seed=5)
    inside, summary_inside = interpret_cells(adata, *tables)
    path = tmp_path / "scores.parquet"
    tables[0].iloc[::-1].rename_axis("cell").to_parquet(path)
    neighbours = identity_graph(path, adata)
    assert neighbours.shape == (300, celltypes.N_NEIGHBORS)
    calls, summary = interpret_cells(adata, *tables, neighbours=neighbours)
    pd.testing.assert_frame_equal(calls, inside, check_exact=True)
    assert summary == summary_inside


def test_cell_table_read_for_named_columns_keeps_only_those_in_file_order(tmp_path):
    adata, tables = _typed_sample(n_cells=50, seed=6)
    path = tmp_path / "scores.parquet"
    tables[0].rename_axis("cell").to_parquet(path)
    read = read_cell_table(path, adata.obs_names, only=["IMM_B", "EMT_bidirectional", "absent"])
    pd.testing.assert_frame_equal(
        read, tables[0][["IMM_B", "EMT_bidirectional"]], check_exact=True, check_names=False
    )


def test_cell_type_graph_given_with_other_cells_is_refused():
    adata, (scores, pvalues, fdr) = _typed_sample(n_cells=60, seed=7)
    with pytest.raises(ValueError, match="rows for 60 cells"):
        assign_cell_types(scores, fdr, pvalues=pvalues, neighbours=np.zeros((59, 15), np.int32))


def test_float32_embedding_gives_the_approximate_search_its_own_graph():
    # identity_embedding hands the approximate search float32 (its own conversion) so the
    # float64 copy is not held through it: the graph is the one of the float64 embedding
    _, (scores, _, _) = _typed_sample(n_cells=600, seed=8)
    z = robust_z(scores[celltypes.cell_type_signatures(scores.columns)].to_numpy())
    from_float64 = neighbour_index(z, 15, exact_max_cells=100)
    np.testing.assert_array_equal(
        neighbour_index(z.astype(np.float32), 15, exact_max_cells=100), from_float64
    )
    assert celltypes.identity_embedding(scores).dtype == np.float64  # 600 cells: exact search


def _files(tmp_path, tables, order=slice(None)):
    """The tables written as the workflow writes them (cells stored in ``order``)."""
    paths = []
    for name, table in zip(("scores", "pvalues", "fdr"), tables, strict=True):
        paths.append(tmp_path / f"{name}.parquet")
        table.iloc[order].rename_axis("cell").to_parquet(paths[-1])
    return paths


def _with_programmes(tables, seed):
    """The tables with the summary's, the one-sided EMT and an unread programme's columns."""
    rng = np.random.default_rng(seed)
    extra = ["NET_formation", "EV_biogenesis", "EMT_epithelial", "EMT_mesenchymal", "NICHE_Notch"]
    values = rng.random((tables[0].shape[0], len(extra)))
    return [t.assign(**dict(zip(extra, values.T, strict=True))) for t in tables]


@pytest.mark.parametrize("order", [slice(None), slice(None, None, -1)])
def test_cell_tables_read_from_files_step_by_step_give_the_calls_of_the_tables(tmp_path, order):
    adata, tables = _typed_sample(n_cells=300, seed=11)
    tables = _with_programmes(tables, 11)
    adata.obs["cell_type"] = np.where(np.arange(300) % 2, "A", "B")  # labels: a confusion table
    paths = _files(tmp_path, tables, order)
    # the tables as the workflow read them before: whole, the signatures read (the layout of a
    # file's columns, which the posterior's last bits follow, is a read table's)
    read = [read_cell_table(path, adata.obs_names, signatures=True) for path in paths]
    calls, summary = interpret_cells(adata, *read)
    from_files, summary_files = interpret_cells(adata, *paths)
    pd.testing.assert_frame_equal(from_files, calls, check_exact=True)
    assert summary_files == summary and list(summary_files) == list(summary)
    assert summary["partner_enrichment"] and summary["exosome_by_cell_type"]


def test_cell_tables_read_only_the_wanted_columns_in_the_tables_order(tmp_path):
    adata, tables = _typed_sample(n_cells=40, seed=12)
    tables = _with_programmes(tables, 12)
    cell_tables = interpret.CellTables(adata, *_files(tmp_path, tables))
    assert "NICHE_Notch" not in cell_tables.columns  # a file: the signatures read
    read = cell_tables.read("fdr", ("EMT_mesenchymal", "CTC_epithelial_identity", "IMM_*"))
    expected = [c for c in tables[2].columns if c.startswith("IMM_")]
    expected += ["CTC_epithelial_identity", "EMT_mesenchymal"]
    pd.testing.assert_frame_equal(read, tables[2][expected], check_exact=True, check_names=False)


def test_cell_tables_with_other_signatures_are_refused(tmp_path):
    adata, tables = _typed_sample(n_cells=40, seed=13)
    paths = _files(tmp_path, [tables[0], tables[1].drop(columns="IMM_B"), tables[2]])
    with pytest.raises(InputError, match="pvalues: signature columns differ"):
        interpret.CellTables(adata, *paths)


def test_cell_tables_refuse_a_table_missing_cells_before_any_step():
    adata, tables = _typed_sample(n_cells=40, seed=14)
    with pytest.raises(InputError, match="fdr: 1 cell"):
        interpret.CellTables(adata, tables[0], tables[1], tables[2].iloc[1:])


def test_summary_given_the_partner_enrichment_equals_the_one_from_the_fdrs():
    adata, tables = _typed_sample(n_cells=200, seed=15)
    calls, _ = interpret_cells(adata, *tables)
    whole = summarise_interpretation(calls, None, tables[0], adata, fdr=tables[2])
    enrichment = {p: partner_enrichment(tables[2], 0.05, p) for p in PARTNERS}
    given = summarise_interpretation(calls, None, tables[0], adata, enrichment=enrichment)
    assert given == whole and list(given) == list(whole)


def test_standardised_features_equal_the_whole_expression_and_keep_the_input():
    x = np.asfortranarray(np.random.default_rng(16).normal(0, 30, (50, 6)))
    mean, sd = x.mean(axis=0), x.std(axis=0)
    before = x.copy()
    expected = np.clip((x - mean) / sd, -refine.MAX_VALUE, refine.MAX_VALUE)
    out = refine._standardised(x, mean, sd)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(x, before)
    assert out.flags.f_contiguous == expected.flags.f_contiguous
    in_c_order = refine._standardised(x, mean, sd, order="C")
    np.testing.assert_array_equal(in_c_order, expected)
    assert in_c_order.flags.c_contiguous


def test_marker_rows_of_a_compressed_matrix_are_float64_in_the_dense_layout():
    matrix = sp.random(30, 5, density=0.4, format="csr", random_state=1, dtype=np.float32)
    rows = MarkerColumns(matrix, list("ABCDE")).rows(["E", "B"], np.array([4, 0, 29]))
    expected = np.asarray(sp.csc_matrix(matrix)[[4, 0, 29]][:, [4, 1]].toarray(), np.float64)
    np.testing.assert_array_equal(rows, expected)
    assert rows.dtype == np.float64 and rows.flags.f_contiguous == expected.flags.f_contiguous


def test_identity_graph_from_the_cell_names_alone_equals_the_one_from_the_anndata(tmp_path):
    adata, tables = _typed_sample(n_cells=120, seed=17)
    path = tmp_path / "scores.parquet"
    tables[0].iloc[::-1].rename_axis("cell").to_parquet(path)
    from_names = identity_graph(path, adata.obs_names.copy())
    np.testing.assert_array_equal(from_names, identity_graph(path, adata))
    with pytest.raises(InputError, match="scores: 1 cell"):
        identity_graph(path, pd.Index([*adata.obs_names, "extra"]))


def test_p_values_given_as_a_function_are_read_once_and_give_the_same_types():
    adata, (scores, pvalues, fdr) = _typed_sample(n_cells=200, seed=18)
    core, markers = shipped_markers()
    options = {"expression": adata, "core_markers": core, "marker_genes": markers}
    given = assign_cell_types(scores, fdr, pvalues=pvalues, **options)
    reads = []
    lazy = assign_cell_types(scores, fdr, pvalues=lambda: reads.append(1) or pvalues, **options)
    pd.testing.assert_frame_equal(lazy, given, check_exact=True)
    assert reads == [1]


def test_scores_given_as_a_function_are_read_for_the_evidence_and_the_call_scores():
    adata, (scores, pvalues, fdr) = _typed_sample(n_cells=200, seed=20)
    core, markers = shipped_markers()
    options = {"expression": adata, "core_markers": core, "marker_genes": markers}
    given = assign_cell_types(scores, fdr, pvalues=pvalues, **options)
    reads = []
    lazy = assign_cell_types(
        lambda: reads.append(1) or scores, fdr.iloc[:0], pvalues=pvalues, **options
    )
    pd.testing.assert_frame_equal(lazy, given, check_exact=True)
    assert reads == [1, 1]


def test_p_values_holding_just_the_cell_type_columns_give_the_same_types():
    adata, (scores, pvalues, fdr) = _typed_sample(n_cells=200, seed=21)
    core, markers = shipped_markers()
    options = {"expression": adata, "core_markers": core, "marker_genes": markers}
    used = celltypes.cell_type_signatures(scores.columns)
    given = assign_cell_types(scores, fdr, pvalues=pvalues, **options)
    just = assign_cell_types(scores, fdr, pvalues=pvalues[used].copy(), **options)
    pd.testing.assert_frame_equal(just, given, check_exact=True)


@pytest.mark.parametrize("block", [2, 17, 64])
def test_classifier_predictions_in_blocks_equal_one_block(monkeypatch, block):
    rng = np.random.default_rng(19)
    features = rng.normal(0, 1, (300, 12))
    labels = np.where(rng.random(300) < 0.4, -1, rng.integers(0, 4, 300))
    features[labels >= 0, labels[labels >= 0]] += 2.0  # learnable types
    candidates = np.flatnonzero(labels < 0)
    allowed = rng.random((300, 4)) < 0.8
    monkeypatch.setattr(refine, "BLOCK_CELLS", 1_000_000)
    whole = refine.refine_calls(lambda cells: features[cells], labels, candidates, allowed)
    monkeypatch.setattr(refine, "BLOCK_CELLS", block)
    blocks = refine.refine_calls(lambda cells: features[cells], labels, candidates, allowed)
    np.testing.assert_array_equal(blocks[0], whole[0])
    np.testing.assert_array_equal(blocks[1], whole[1])
    assert (whole[0] >= 0).any()
