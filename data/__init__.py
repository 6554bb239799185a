"""Datasets (Kaggle COVID-19 Radiography Database, synthetic chest X-rays) and the input pipeline."""
