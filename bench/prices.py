"""List prices, with their sources and the date they were read, and the cost per 1,000 reviews.

These are public LIST prices (USD, no free tier, no committed-use discount),
read from the providers' pricing pages on PRICES_READ_ON; they change, so every
report prints them with their source next to the result.

Cloud Functions 2nd gen are Cloud Run functions and are billed as Cloud Run
services: with request-based billing (CPU allocated only while requests are
processed), in Tier 1 regions, per vCPU-second, per GiB-second and per request,
an instance's billable time rounded up to the next 100 ms.

The managed alternative priced beside it is the Cloud Natural Language API's
sentiment analysis: per unit of 1,000 Unicode characters, each document
rounded up to whole units, 5,000 units a month free.
"""

from __future__ import annotations

import math
from typing import Any

PRICES_READ_ON = "2026-11-26"

CLOUD_RUN: dict[str, Any] = {
    "source": "https://cloud.google.com/run/pricing",
    "what": "Cloud Run functions (Cloud Functions 2nd gen) = Cloud Run services, request-based billing, Tier 1 regions",
    "usd_per_vcpu_second": 0.000024,
    "usd_per_gib_second": 0.0000025,
    "usd_per_million_requests": 0.40,
    "billing_granularity_seconds": 0.1,
}

NATURAL_LANGUAGE: dict[str, Any] = {
    "source": "https://cloud.google.com/natural-language/pricing",
    "what": "Cloud Natural Language API, Sentiment Analysis, 5,000 to 1,000,000 units a month",
    "usd_per_1000_units": 1.00,
    "chars_per_unit": 1000,
    "volume_tiers_usd_per_1000_units": {"1M-5M units": 0.50, "over 5M units": 0.25},
}

DATAFLOW: dict[str, Any] = {
    "source": "https://cloud.google.com/dataflow/pricing",
    "what": "Dataflow batch workers, us-central1, per vCPU-hour and GB-hour of worker memory, plus persistent disk",
    "read_on": "2025 (the list prices then published; not re-read when added here: verify before quoting)",
    "usd_per_vcpu_hour": 0.056,
    "usd_per_gb_hour": 0.003557,
    "usd_per_pd_gb_hour": 0.000054,
    "worker": {"machine_type": "n2-standard-2", "vcpu": 2, "memory_gb": 8.0, "disk_gb": 25},
}


def dataflow_worker_usd_per_hour() -> float:
    worker = DATAFLOW["worker"]
    return float(worker["vcpu"] * DATAFLOW["usd_per_vcpu_hour"] + worker["memory_gb"] * DATAFLOW["usd_per_gb_hour"]
                 + worker["disk_gb"] * DATAFLOW["usd_per_pd_gb_hour"])


def natural_language_usd(reviews: int, units_per_review: float) -> float:
    """A month's bill for ``reviews`` reviews on the Natural Language API's volume tiers (first 5,000 units free)."""
    units = reviews * units_per_review
    bands = [(5_000, 0.0), (1_000_000, 1.00), (5_000_000, 0.50), (float("inf"), 0.25)]
    total, floor = 0.0, 0
    for ceiling, price in bands:
        used = max(0.0, min(units, ceiling) - floor)
        total += used / 1000 * price
        floor = int(min(ceiling, 1e18))
    return round(total, 2)


# The tiers of terraform/variables.tf (classify_http runs on "http"); keep in step with it.
TIERS: dict[str, dict[str, Any]] = {
    "http": {"vcpu": 2, "memory_gib": 2.0, "concurrency": 4},
    "standard": {"vcpu": 1, "memory_gib": 0.5, "concurrency": 1},
    "accurate": {"vcpu": 1, "memory_gib": 2.0, "concurrency": 1},
}


def instance_usd_per_second(tier: dict[str, Any]) -> float:
    return float(tier["vcpu"] * CLOUD_RUN["usd_per_vcpu_second"] + tier["memory_gib"] * CLOUD_RUN["usd_per_gib_second"])


def cloud_run_per_1000(reviews_per_second: float, tier: dict[str, Any], reviews_per_request: int) -> dict[str, float]:
    """USD per 1,000 reviews on a tier at a measured throughput.

    ``busy``: the instance is billed only for the seconds it computes (steady
    traffic, requests back to back, so the 100 ms rounding spreads over many);
    ``sparse``: every request arrives alone and is billed at least 100 ms.
    """
    requests = 1000 / reviews_per_request
    per_request_fee = requests * float(CLOUD_RUN["usd_per_million_requests"]) / 1e6
    seconds_per_request = reviews_per_request / reviews_per_second
    granule = float(CLOUD_RUN["billing_granularity_seconds"])
    sparse_seconds = math.ceil(seconds_per_request / granule - 1e-9) * granule
    rate = instance_usd_per_second(tier)
    return {
        "busy": round(requests * seconds_per_request * rate + per_request_fee, 5),
        "sparse": round(requests * sparse_seconds * rate + per_request_fee, 5),
    }


def natural_language_per_1000(texts: list[str]) -> float:
    """USD per 1,000 reviews like ``texts`` (each review one document, rounded up to whole units)."""
    chars_per_unit = int(NATURAL_LANGUAGE["chars_per_unit"])
    units = sum(max(1, math.ceil(len(t) / chars_per_unit)) for t in texts)
    return round(units / len(texts) * float(NATURAL_LANGUAGE["usd_per_1000_units"]), 4)
