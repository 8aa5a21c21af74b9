-- 0009_fares: a trip's fare (issue 15, docs/fares.md). fare_estimate_cents (0003) becomes
-- the rate card's fare of the route at its calibrated ETA without surge; these columns add
-- what the rider was quoted and what the ride cost.
ALTER TABLE trips
  ADD COLUMN fare_tariff text,                     -- the rate card of the quote (its name)
  ADD COLUMN fare_quote_cents integer,             -- quoted to the rider at the request, tolls left out
  ADD COLUMN surge_multiplier double precision,    -- the surge in that quote (>= 1)
  ADD COLUMN route_length_m double precision,      -- length of the route line, m
  ADD COLUMN fare_final_cents integer,             -- at completion: the route priced over the real started -> completed time, with the quote's surge
  ADD COLUMN fare_final_metered_cents integer;     -- its metered part (flag drop + increments, before surge)
ALTER TABLE trips ADD CONSTRAINT trips_surge_floor CHECK (surge_multiplier IS NULL OR surge_multiplier >= 1);
