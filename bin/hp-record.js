#!/usr/bin/env node
import { main } from '../dist/cmd/record.js';

main(process.argv.slice(2));
