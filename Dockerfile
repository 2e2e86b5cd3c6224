# The memberstream image: the CLI, the Faust worker and the replay tool.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY models ./models
COPY bench ./bench
# The docs the code cites (docs/broker.md, docs/triton.md, DESIGN.md) travel with it.
COPY docs ./docs
RUN pip install --no-cache-dir .
EXPOSE 6066
ENTRYPOINT []
CMD ["memberstream", "worker"]
