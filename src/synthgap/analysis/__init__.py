"""Analysis stage: per-layer diagnostics of an experiment's R and S baseline students (`synthgap analyze DIR`).

- `features.py`: every layer's output through hooks placed by the family's layer map; pooling to one vector per image.
- `cka.py`: minibatch linear CKA with the unbiased HSIC estimator.
- `probes.py`: linear probes (logistic regression, L-BFGS) on pooled features.
- `distances.py`: Fréchet distance, KID's kernel MMD², improved precision/recall between two image sets' features.
- `analyze.py`: the pipeline; `rows.py`: the analysis.jsonl rows; `summary.py`: readings shared with the report.

It reads experiment folders (results.jsonl, spec.yaml) and the model cache; `report/` reads its rows.
"""

from synthgap.analysis.analyze import analyze
from synthgap.analysis.rows import ANALYSIS_FILE, AnalysisRow, read_analysis, write_analysis
from synthgap.analysis.summary import summary_lines

__all__ = ["ANALYSIS_FILE", "AnalysisRow", "analyze", "read_analysis", "summary_lines", "write_analysis"]
