"""Models: specs, training with time-based holdouts, evaluation by segment and fairness group, the MLflow
registry gate (aliases `champion` / `challenger`), scoring with SHAP reasons, drift monitoring and kill switches.

Pure pandas + MLflow: nothing here creates a Spark session; callers pass pandas frames read from Delta.
"""
