"""The leak scenarios: each module holds one story's leaky code, its traffic and its grading burst."""
