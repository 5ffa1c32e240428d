"""The paper's published numbers live once (mhr_tf/paper.py); the README's table is generated from them."""
from pathlib import Path

from mhr_tf import paper

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_table_is_the_one_generated_from_the_papers_numbers():
    text = README.read_text()
    start, end = text.index("<!-- paper-table:start -->\n"), text.index("<!-- paper-table:end -->")
    assert text[start + len("<!-- paper-table:start -->\n"):end].strip() == paper.markdown_table()


def test_table_values_are_the_papers():
    """A few of the published numbers, typed from the paper (Tables 1-3), against the one table."""
    by_label = {(row.table, row.label): row.pa_mpjpe_mm for row in paper.ROWS}
    assert by_label[("Table 1", "RGB Only")] == 105.6
    assert by_label[("Table 1", "Flow + Keypoints")] == 74.7
    assert by_label[("Table 2", "Static background, no occlusions")] == 88.9
    assert by_label[("Table 3", "Clip length 56")] == 76.2
    assert paper.DANN_MEAN_MM == 107.5
    assert len(paper.TABLE_1) == 11 and len(paper.TABLE_2) == 4 and len(paper.TABLE_3) == 4
