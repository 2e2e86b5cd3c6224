# NVIDIA's Triton container plus what the exported Python-backend model imports.
ARG TRITON_IMAGE
FROM ${TRITON_IMAGE}
RUN pip install --no-cache-dir torch==2.13.0 "transformers>=4.46" "numpy<2"
