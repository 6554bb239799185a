"""SHAP explanations of trained runs: predict wrappers, sampled maps, shortcut/lesion scores, figures, report section."""
