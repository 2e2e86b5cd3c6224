"""Decisions on member state: churn alerts, recommendations, segments, anomalies.

Pure functions of the member's state, the model's scores and event time, so
that a replay at any speed decides the same.
"""
