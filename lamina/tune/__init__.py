"""Power tuning: run a function at several memory sizes and compare duration and cost.

What AWS Lambda Power Tuning does with a Step Functions state machine, as one command:
`runner` drives the function through the Lambda API (a temporary version and alias per size,
then cleans up), `report` turns the measurements into a typed report (pure, unit-tested), and
`plot` draws it.
"""
