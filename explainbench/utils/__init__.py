"""Small helpers only; anything that belongs to data, methods, explainers or metrics lives there."""
