"""Model-side code: datasets over lipflow's feature stores (and, later, models and training)."""
