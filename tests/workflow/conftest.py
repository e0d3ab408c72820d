"""The workflow tests reuse the unlearning tests' planted dataset and briefly trained LightGCN."""

from ..unlearn.conftest import small_data, trained  # noqa: F401  (fixtures)
