#!/usr/bin/env node
import { main } from '../dist/cmd/pprof.js';

main(process.argv.slice(2));
