"""Forecasts of failures that have not happened yet: pure time-to-limit models over series
(``model``) and certificates' expiry read from the certificate itself (``certificates``).

Nothing here does I/O against the cluster or Prometheus: the operator's forecast loop
(``aisre.operator.detection.forecast``) and the forecast bench gather the inputs and call
these functions.
"""

from aisre.forecast.model import Fit, ForecastSettings, Outcome, Prediction, forecast

__all__ = ["Fit", "ForecastSettings", "Outcome", "Prediction", "forecast"]
