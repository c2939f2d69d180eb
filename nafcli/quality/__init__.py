"""Quality: PSNR/SSIM as the authors compute them, evaluation on test sets, the install check against the
authors' published outputs, and the benchmark."""
