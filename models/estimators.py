"""The two candidate pipelines (logistic, LightGBM) and the feature step they share."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SEED = 42
MISSING = "__missing__"
# Types skops may rebuild when loading a registered model, beyond the sklearn/numpy types it trusts
# itself. The list lives in code, not in the artifact, so a tampered artifact cannot widen it.
TRUSTED_TYPES = [
    "models.estimators.FeatureFrame",
    "collections.OrderedDict",
    "numpy.dtype",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
]
# LightGBM takes native parameters beside its sklearn ones; these are the ones a spec may set.
_LIGHTGBM_NATIVE = {"seed", "deterministic", "force_row_wise", "max_bin", "min_data_in_leaf", "feature_fraction",
                    "bagging_fraction", "bagging_freq", "lambda_l1", "lambda_l2", "max_cat_to_onehot", "cat_smooth",
                    "cat_l2", "min_data_per_group", "max_cat_threshold"}


class FeatureFrame(BaseEstimator, TransformerMixin):
    """Selects the spec's features in order: numbers as float64, categories with the categories seen in training.

    `categorical_as="category"` gives pandas categoricals (LightGBM reads them natively);
    `"string"` gives strings with nulls as a `__missing__` level (for one-hot encoding).
    Quartiles of each numeric feature are kept so reason texts can say "low" or "high".
    """

    def __init__(self, features: tuple[str, ...] = (), categorical: tuple[str, ...] = (),
                 categorical_as: str = "category"):
        self.features = features
        self.categorical = categorical
        self.categorical_as = categorical_as

    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureFrame:
        """Learn category levels and numeric quartiles from the training frame."""
        self.categories_ = {c: sorted(X[c].dropna().astype(str).unique().tolist()) for c in self.categorical}
        numeric = [f for f in self.features if f not in self.categorical]
        self.quartiles_ = {f: [float(q) if pd.notna(q) else float("nan")
                               for q in pd.to_numeric(X[f]).astype("float64").quantile([0.25, 0.75])]
                           for f in numeric}
        self.n_features_in_ = len(self.features)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The features of X, typed as in training; unseen categories become null."""
        columns = {}
        for name in self.features:
            if name not in self.categorical:
                columns[name] = pd.to_numeric(X[name]).astype("float64").to_numpy()
                continue
            values = X[name].astype("object").where(X[name].notna(), None)
            values = values.map(lambda v: None if v is None else str(v))
            known = pd.Categorical(values, categories=self.categories_[name])
            if self.categorical_as == "category":
                columns[name] = known
            else:
                columns[name] = np.asarray(pd.Series(known).astype("object").fillna(MISSING), dtype=object)
        return pd.DataFrame(columns, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Feature names in output order."""
        return np.asarray(self.features, dtype=object)


def estimator_param_names(algorithm: str) -> set[str]:
    """Parameter names a spec may set for an algorithm."""
    if algorithm == "logistic":
        return set(LogisticRegression().get_params())
    from lightgbm import LGBMClassifier

    return set(LGBMClassifier().get_params()) | _LIGHTGBM_NATIVE


def build_pipeline(algorithm: str, features: tuple[str, ...], categorical: tuple[str, ...],
                   params: dict[str, Any]) -> Pipeline:
    """An unfitted sklearn Pipeline taking the raw feature columns and ending in a classifier step `model`."""
    numeric = [f for f in features if f not in categorical]
    if algorithm == "lightgbm":
        from lightgbm import LGBMClassifier

        # Fixed seed, row-wise histograms and deterministic mode: the same data gives the same trees.
        settings = {"random_state": SEED, "n_jobs": 2, "verbose": -1, "deterministic": True,
                    "force_row_wise": True, **params}
        return Pipeline([("frame", FeatureFrame(tuple(features), tuple(categorical), "category")),
                         ("model", LGBMClassifier(**settings))])
    transformers = [("num", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                      ("scale", StandardScaler())]), numeric)]
    if categorical:
        transformers.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(categorical)))
    settings = {"max_iter": 1000, "random_state": SEED, **params}
    # Centering every encoded column (one-hot ones included) only moves the unpenalised intercept, so the fit
    # is unchanged; it makes the intercept the log-odds of an average customer, the base of the reasons.
    return Pipeline([("frame", FeatureFrame(tuple(features), tuple(categorical), "string")),
                     ("prep", ColumnTransformer(transformers, sparse_threshold=0.0)),
                     ("center", StandardScaler(with_std=False)),
                     ("model", LogisticRegression(**settings))])


def algorithm_of(model: Pipeline) -> str:
    """'lightgbm' or 'logistic', from the pipeline's final step."""
    final = model.steps[-1][1]
    return "logistic" if isinstance(final, LogisticRegression) else "lightgbm"


def encoded_feature_index(model: Pipeline) -> list[str]:
    """For a fitted logistic pipeline: the source feature of each encoded column, in column order."""
    frame: FeatureFrame = model.named_steps["frame"]
    prep: ColumnTransformer = model.named_steps["prep"]
    owners: list[str] = []
    for name, transformer, columns in prep.transformers_:
        if name == "num":
            owners.extend(columns)
        elif name == "cat":
            for column, levels in zip(columns, transformer.categories_):
                owners.extend([column] * len(levels))
    if len(owners) != len(model.named_steps["model"].coef_[0]):
        raise AssertionError(f"encoded columns {len(owners)} != coefficients for features {frame.features}")
    return owners
