"""Pure domain logic, with no asyncio, Kafka or Faust: event parsing, member
state and its codec, event time, the inactivity schedule, and the policies that
decide alerts, recommendations, segments and anomalies."""
